"""experiment=ops: every estimator's ranking of >= 10 candidates, scored against the exact truth."""

import json
import math
from pathlib import Path

import numpy as np
import pytest
from hydra import compose, initialize_config_dir
from scipy import stats

from recsim_causal.experiment.runner import run_job
from recsim_causal.scm.world import CONF_DIR


def compose_ops(overrides):
    with initialize_config_dir(config_dir=str(CONF_DIR), version_base=None):
        return compose(config_name="config", overrides=["experiment=ops", "wandb.mode=disabled", *overrides])


@pytest.fixture(scope="module")
def ops_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("ops")
    cfg = compose_ops(["experiment.n_rounds=3000", "experiment.train_rounds=3000",
                       "experiment.use=[dm,ipw,dr,switch-dr-auto]"])
    return run_job(cfg, out), out


def test_ops_writes_strict_json_and_a_figure(ops_run):
    summary, out = ops_run
    data = json.loads((out / "ops.json").read_text(), parse_constant=lambda c: pytest.fail(f"non-strict JSON: {c}"))
    assert (out / "ops.png").stat().st_size > 10_000
    assert len(data["truth"]) >= 10
    assert set(data["estimators"]) == {"dm", "ipw", "dr", "switch-dr-auto"}
    assert set(data["estimators"]["switch-dr-auto"]["lambda"]) == set(data["truth"])  # the chosen lambda per candidate


def test_ops_metrics_agree_with_scipy_and_the_exact_values(ops_run):
    summary, _ = ops_run
    names = list(summary["truth"])
    tv = np.array([summary["truth"][n] for n in names])
    for e, res in summary["estimators"].items():
        ev = np.array([res["estimates"][n] for n in names])
        m = res["metrics"]
        assert m["spearman"] == pytest.approx(stats.spearmanr(ev, tv).statistic, abs=1e-12)
        assert m["kendall"] == pytest.approx(stats.kendalltau(ev, tv).statistic, abs=1e-12)
        picked = names[int(np.argmax(ev))]
        assert res["selected"] == picked
        assert m["regret@1"] == pytest.approx(tv.max() - summary["truth"][picked], abs=1e-15)
        assert all(math.isfinite(v) for k, v in m.items() if v is not None)


def test_ops_needs_named_candidates(tmp_path):
    with pytest.raises(ValueError, match="experiment.candidates.bad: expected a mapping with 'agent'"):
        run_job(compose_ops(["+experiment.candidates.bad=3"]), tmp_path)


def test_ops_ranks_slate_candidates_against_the_exact_truth(tmp_path):
    cfg = compose_ops(["env=slate", "scm=position_bias", "env.n_items=8", "env.slate_size=2",
                       "experiment.n_rounds=800", "experiment.train_rounds=400", "experiment.slate.truth_slates=4",
                       "experiment.slate.estimators=[sips,iips,sniips]"])
    summary = run_job(cfg, tmp_path)
    data = json.loads((tmp_path / "ops.json").read_text(), parse_constant=lambda c: pytest.fail(f"non-strict JSON: {c}"))
    assert data["setting"] == "slate" and len(data["truth"]) >= 10 and (tmp_path / "ops.png").exists()
    names = list(summary["truth"])
    tv = np.array([summary["truth"][n] for n in names])
    for e in ("sips", "iips", "sniips"):
        res = summary["estimators"][e]
        ev = np.array([res["estimates"][n] for n in names])
        assert res["metrics"]["spearman"] == pytest.approx(stats.spearmanr(ev, tv).statistic, abs=1e-12)
        assert res["metrics"]["regret@1"] == pytest.approx(tv.max() - tv[int(np.argmax(ev))], abs=1e-15)
    assert summary["logger_value_source"] == "logged mean return"


def test_ops_ranks_session_candidates_against_the_rollout_truth(tmp_path):
    cfg = compose_ops(["env=session", "env.n_items=8", "env.max_steps=3", "experiment.n_rounds=200",
                       "experiment.train_rounds=150", "experiment.session.truth_trajectories=500",
                       "experiment.session.estimators=[dm,pdis,sntis]"])
    summary = run_job(cfg, tmp_path)
    data = json.loads((tmp_path / "ops.json").read_text(), parse_constant=lambda c: pytest.fail(f"non-strict JSON: {c}"))
    assert data["setting"] == "session" and len(data["truth"]) >= 10 and set(data["truth_se"]) == set(data["truth"])
    names = list(summary["truth"])
    tv = np.array([summary["truth"][n] for n in names])
    for e, res in summary["estimators"].items():
        if res["ranking"] is None:  # an undefined self-normalized estimate: said, never ranked
            assert res["reason"].startswith("no finite estimate")
            continue
        ev = np.array([res["estimates"][n] for n in names])
        assert res["metrics"]["kendall"] == pytest.approx(stats.kendalltau(ev, tv).statistic, abs=1e-12)
        assert res["metrics"]["regret@1"] == pytest.approx(tv.max() - tv[int(np.argmax(ev))], abs=1e-15)


def test_logged_value_is_the_mean_discounted_return_by_hand():
    from types import SimpleNamespace

    from recsim_causal.experiment.ops import logged_value

    # two sessions: rewards (1, 1) and (0, 2, 4); gamma 0.5: returns 1.5 and 0 + 1 + 1 = 2
    fb = SimpleNamespace(reward=[1.0, 1.0, 0.0, 2.0, 4.0], trajectory_id=np.array([7, 7, 9, 9, 9]),
                         step=np.array([0, 1, 0, 1, 2]), slate_id=None)
    assert logged_value(fb, 0.5) == pytest.approx((1.5 + 2.0) / 2)
    slates = SimpleNamespace(reward=[1.0, 0.0, 1.0, 0.0, 0.0, 1.0], trajectory_id=None, slate_id=np.repeat([0, 1], 3))
    assert logged_value(slates) == pytest.approx(1.5)
    assert logged_value(SimpleNamespace(reward=[1.0, 0.0, 0.0, 0.0], trajectory_id=None, slate_id=None)) == 0.25
