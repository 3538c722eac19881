"""simulate_log / evaluate for slates and sessions: estimates against the exact (slates) or
rollout (sessions) truth, the Parquet round trip with the setting read back, every record's
interval_valid, and one-line errors."""

import math

import numpy as np
import pytest

from recsim_causal.agents import RandomPolicy
from recsim_causal.agents.slate import PlackettLuceSlate
from recsim_causal.ope import evaluate, simulate_log
from recsim_causal.scm import World
from tests.test_ope_slate import FixedPolicy as _Fixed

SLATE_ESTIMATORS = ["sips", "iips", "rips", "snsips"]
D = World("position_bias", n_items=6, slate_size=3).obs_dim


class FixedPolicy(_Fixed):
    """softmax(x W) as a full Policy (act, update): a logger that needs no training."""

    def act(self, x, rng):
        p = self.action_probs(x)
        a = (p.cumsum(axis=1) < rng.random((len(x), 1))).sum(axis=1)
        return a, p[np.arange(len(x)), a]

    def update(self, x, a, r):
        pass


@pytest.fixture(scope="module")
def slate_log():
    # a fixed stochastic logger over K=6 items, slates of 3 under the position-based model
    logger = FixedPolicy(6, D, 1, scale=0.5)
    return simulate_log("position_bias", logger, 3000, slate_size=3, epsilon=0.3, n_items=6, seed=1)


def _se(frame):
    return (frame.ci_high - frame.ci_low) / (2 * 1.959964)


def test_slate_estimates_are_within_4_se_of_the_exact_truth(slate_log):
    assert slate_log.setting == "slate" and slate_log.feedback.setting == "slate"
    assert slate_log.feedback.n_rounds == 3 * 3000 and slate_log.data.wide.n_rounds == 3000
    target = PlackettLuceSlate(FixedPolicy(6, D, 2, scale=0.3), 3)
    result = evaluate(slate_log, {"pl": target}, SLATE_ESTIMATORS, ci="normal")
    frame = result.to_frame()
    assert result.setting == "slate" and result.n_rounds == 3000 and list(frame.estimator) == SLATE_ESTIMATORS
    truth = slate_log.truth(target)  # exact: all 120 slates of every logged user enumerated
    assert result.targets["pl"]["truth_method"] == "enumeration" and (frame.truth == truth).all()
    # SIPS, RIPS and (under the pbm) IIPS are unbiased; SNSIPS is consistent
    assert ((frame.estimate - truth).abs() < 4 * _se(frame)).all(), frame
    assert frame.interval_valid.map(type).eq(bool).all()
    assert (frame.interval_valid | frame.invalid_reason.notna()).all()
    by = frame.set_index("estimator")
    assert by.invalid_reason["iips"].startswith("assumes the independence")
    assert by.interval_valid[["sips", "rips", "snsips"]].all()  # enough overlap: ESS above the calibrated minimum
    # the truth on fresh users: within 4 s.e. of the truth on the logged users (both sample users)
    value, se = slate_log.population_truth(target, n_users=4000, seed=7)
    assert se > 0 and abs(value - truth) < 4 * math.hypot(se, se * math.sqrt(4000 / 3000))


def test_slate_log_saved_and_evaluated_from_its_path_gives_the_same_estimates(slate_log, tmp_path):
    target = PlackettLuceSlate(FixedPolicy(6, D, 2, scale=0.3), 3)
    path = slate_log.save(tmp_path / "slates.parquet")
    in_memory = evaluate(slate_log, {"pl": target}, SLATE_ESTIMATORS, ci="normal").to_frame()
    from_file = evaluate(path, {"pl": target}, SLATE_ESTIMATORS, ci="normal")
    assert from_file.setting == "slate"
    frame = from_file.to_frame()
    assert np.array_equal(frame.estimate, in_memory.estimate) and np.array_equal(frame.ci_low, in_memory.ci_low)
    assert frame.truth.isna().all() and list(frame.interval_valid) == list(in_memory.interval_valid)


def test_slate_log_to_obp_has_obps_slate_keys(slate_log):
    bf = slate_log.to_obp()
    n = 3 * 3000
    assert {"slate_id", "n_unique_action", "pscore_cascade", "pscore_item_position", "position", "pscore"} <= set(bf)
    assert bf["n_unique_action"] == 6 and bf["slate_id"].shape == bf["pscore_cascade"].shape == (n,)
    # the cascade pscore at the last position is the whole slate's
    last = bf["position"] == 2
    assert np.array_equal(bf["pscore_cascade"][last], bf["pscore"][last])
    assert (bf["pscore_item_position"] >= bf["pscore_cascade"] - 1e-12).all()  # a marginal >= one path's mass


def test_slate_targets_by_name_and_mapping_are_trained_and_labelled(slate_log):
    result = evaluate(slate_log, ["random", {"agent": "softmax", "slate": "greedy", "name": "top"}], ["sips"],
                      ci="normal", train_rounds=200)
    assert set(result.targets) == {"random/plackett_luce", "top"}
    assert result.targets["top"]["truth_method"] == "exact"
    # a uniform Plackett-Luce target's truth does not depend on training: the mean slate value
    uniform = PlackettLuceSlate(RandomPolicy(n_actions=6), 3)
    assert result.targets["random/plackett_luce"]["truth"] == pytest.approx(slate_log.truth(uniform), rel=1e-12)


@pytest.mark.parametrize("call, message", [
    (lambda log: evaluate(log, "random", ["ipw"]), r"^estimators\[0\]: unknown slate estimator 'ipw' \(known: sips"),
    (lambda log: evaluate(log, "random", ["sips"], sensitivity={}), r"^sensitivity: bounds under hidden confounding"),
    (lambda log: evaluate(log, [{"agent": "random", "slate": "topk"}], ["sips"]),
     r"^targets\[0\].slate: unknown slate policy 'topk'"),
    (lambda log: evaluate(log, ["random", "random"], ["sips"]),
     r"^targets: items 0 and 1 are both labelled 'random/plackett_luce'"),
    (lambda log: simulate_log("position_bias", "random", 10, slate_size=3, n_items=6, gamma=0.9),
     r"^gamma: not an option of slate logs$"),
])
def test_slate_mistakes_are_one_line_errors(slate_log, call, message):
    with pytest.raises(ValueError, match=message):
        call(slate_log)


# --------------------------------------------------------------------------- sessions
SESSION_ESTIMATORS = ["tis", "pdis", "sntis", "snpdis"]
OBS = 19  # Session-v0's observation with 10 items


@pytest.fixture(scope="module")
def session_log():
    # a uniform logger; sessions of at most 5 steps, discounted
    return simulate_log("default", RandomPolicy(n_actions=10), 2000, env="session", n_items=10, seed=1, gamma=0.9,
                        env_kwargs={"max_steps": 5}, truth_trajectories=40_000)


def test_session_estimates_are_within_4_se_of_the_rollout_truth(session_log):
    assert session_log.setting == "session" and session_log.feedback.setting == "session"
    assert len(np.unique(session_log.feedback.trajectory_id)) == 2000
    target = FixedPolicy(10, OBS, 3, scale=0.15)
    result = evaluate(session_log, {"mild": target}, SESSION_ESTIMATORS, ci="normal")
    frame, block = result.to_frame(), result.targets["mild"]
    assert result.setting == "session" and result.n_rounds == 2000 and list(frame.estimator) == SESSION_ESTIMATORS
    assert block["truth_trajectories"] == 40_000 and block["truth_se"] > 0
    truth = frame.truth[0]
    # the truth is itself a rollout mean: its s.e. joins the estimators'
    assert ((frame.estimate - truth).abs() < 4 * np.hypot(_se(frame), block["truth_se"])).all(), frame
    assert frame.interval_valid.map(type).eq(bool).all() and (frame.interval_valid | frame.invalid_reason.notna()).all()
    assert frame.interval_valid.all(), frame.invalid_reason.tolist()  # mild weights: every interval trusted
    # fresh sessions: another rollout sample of the same value
    value, se = session_log.population_truth(target, n_users=20_000)
    assert abs(value - truth) < 4 * math.hypot(se, block["truth_se"])


def test_session_log_saved_and_evaluated_from_its_path_gives_the_same_estimates(session_log, tmp_path):
    target = FixedPolicy(10, OBS, 3, scale=0.15)
    path = session_log.save(tmp_path / "sessions.parquet")
    in_memory = evaluate(session_log, {"mild": target}, SESSION_ESTIMATORS, ci="normal", truth_trajectories=100)
    from_file = evaluate(path, {"mild": target}, SESSION_ESTIMATORS, ci="normal")
    assert from_file.setting == "session"  # read from the columns; gamma 0.9 from the file's metadata
    a, b = in_memory.to_frame(), from_file.to_frame()
    assert np.allclose(a.estimate, b.estimate, rtol=1e-12) and np.allclose(a.ci_high, b.ci_high, rtol=1e-12)
    assert b.truth.isna().all() and list(a.interval_valid) == list(b.interval_valid)


@pytest.mark.parametrize("call, message", [
    (lambda log: evaluate(log, "random", ["ipw"]), r"^estimators\[0\]: unknown session estimator 'ipw' \(known: dm"),
    (lambda log: evaluate(log, "random", ["pdis"], gamma=0), r"^gamma: expected a number in \(0, 1\], got 0$"),
    (lambda log: evaluate(log, "random", ["pdis"], truth_slates=3), r"^truth_slates: not an option of session logs$"),
    (lambda log: simulate_log("default", "random", 10, env="session", n_items=10, slate_policy="greedy"),
     r"^slate_policy: not an option of session logs$"),
])
def test_session_mistakes_are_one_line_errors(session_log, call, message):
    with pytest.raises(ValueError, match=message):
        call(session_log)
