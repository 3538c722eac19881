"""Sensitivity bounds under the marginal sensitivity model, against independent computations:
the sorting solution of the linear-fractional program against every vertex of the box and
against scipy's linprog (Charnes-Cooper), Dorn & Guo's closed-form weights against a
per-cell linear program, Gamma = 1 against the project's IPS / SNIPS, the breakdown Gamma
against a grid scan of vertex enumerations, and coverage of the truth at the true Gamma in
a small confounded world whose tables are known exactly."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
from scipy.optimize import linprog

from recsim_causal.ope import DR, IPS, SNIPS
from recsim_causal.ope.sensitivity import (
    bounds_at,
    breakdown_gamma,
    dr_sensitivity_bounds,
    gamma_star,
    odds_ratio,
    sensitivity_bounds,
    sharp_weights,
    weight_box,
)


def _sample(rng, n, binary=True):
    r = rng.integers(0, 2, n).astype(float) if binary else rng.normal(0.3, 1.0, n)
    return r, rng.uniform(0.05, 0.9, n), rng.random(n), rng.uniform(0.05, 0.95, n)


def _vertices(a, b):
    for bits in itertools.product((0, 1), repeat=len(a)):
        yield np.where(np.array(bits) == 1, b, a)


def test_sorting_solves_the_linear_fractional_program_exactly():
    rng = np.random.default_rng(0)
    for trial in range(12):
        r, e, pi, _ = _sample(rng, 9, binary=trial % 2 == 0)
        for gamma in (1.0, 1.7, 5.0):
            lo, hi = bounds_at(r, e, pi, [gamma], estimator="snipw", method="zsb")
            a, b = weight_box(e, gamma)
            ratios = [(pi * w * r).sum() / (pi * w).sum() for w in _vertices(a, b)]
            assert hi[0] == pytest.approx(max(ratios), abs=1e-12) and lo[0] == pytest.approx(min(ratios), abs=1e-12)
            # Charnes-Cooper: y = t w, max c.y s.t. a t <= y <= b t, pi.y = 1
            n = len(r)
            A = np.zeros((2 * n, n + 1))
            A[np.arange(n), np.arange(n)], A[np.arange(n), n] = 1.0, -b
            A[n + np.arange(n), np.arange(n)], A[n + np.arange(n), n] = -1.0, a
            for sign, want in ((-1.0, hi[0]), (1.0, lo[0])):
                res = linprog(sign * np.r_[pi * r, 0.0], A_ub=A, b_ub=np.zeros(2 * n), A_eq=np.r_[pi, 0.0][None],
                              b_eq=[1.0], bounds=[(0, None)] * (n + 1), method="highs")
                assert sign * res.fun == pytest.approx(want, abs=1e-9)
            # the unnormalized form over the box: vertex enumeration too
            values = [(pi * w * r).mean() for w in _vertices(a, b)]
            lo_i, hi_i = bounds_at(r, e, pi, [gamma], estimator="ipw", method="zsb")
            assert hi_i[0] == pytest.approx(max(values)) and lo_i[0] == pytest.approx(min(values))


def test_sharp_weights_solve_each_cells_linear_program():
    # In a cell (x, a) with P(r = 1) = p: max / min E[r v] over v in [L, U] with E[v] = 1
    for e, p, gamma in itertools.product((0.03, 0.3, 0.8), (0.02, 0.3, 0.6, 0.97), (1.0, 1.5, 4.0, 30.0)):
        L, U = e + (1 - e) / gamma, e + (1 - e) * gamma
        for upper in (True, False):
            # variables: v1 (the ones' mean weight), v0 (the zeros')
            res = linprog([-p if upper else p, 0.0], A_eq=[[p, 1 - p]], b_eq=[1.0], bounds=[(L, U)] * 2, method="highs")
            v1 = e * sharp_weights(np.array([1.0]), np.array([e]), np.array([p]), gamma, upper)[0]
            v0 = e * sharp_weights(np.array([0.0]), np.array([e]), np.array([p]), gamma, upper)[0]
            assert p * v1 == pytest.approx(p * res.x[0], abs=1e-9), (e, p, gamma, upper)
            assert p * v1 + (1 - p) * v0 == pytest.approx(1.0, abs=1e-12)  # balanced
            assert L - 1e-12 <= v1 <= U + 1e-12 and L - 1e-12 <= v0 <= U + 1e-12


def test_gamma_one_is_the_point_estimate_and_sharp_is_never_wider_than_zsb():
    rng = np.random.default_rng(1)
    r, e, pi, q = _sample(rng, 500)
    K = 4
    action = np.zeros(500, dtype=int)
    action_dist = np.zeros((500, K))
    action_dist[:, 0] = pi
    action_dist[:, 1] = 1 - pi
    ips = IPS().estimate_policy_value(reward=r, action=action, pscore=e, action_dist=action_dist)
    snips = SNIPS().estimate_policy_value(reward=r, action=action, pscore=e, action_dist=action_dist)
    gammas = [1.0, 1.2, 2.0, 5.0, 50.0]
    for est, point in (("ipw", ips), ("snipw", snips)):
        for method in ("sharp", "zsb"):
            lo, hi = bounds_at(r, e, pi, [1.0], estimator=est, method=method, expected_reward=q)
            assert lo[0] == pytest.approx(point, rel=1e-12) and hi[0] == pytest.approx(point, rel=1e-12)
        ls, hs = bounds_at(r, e, pi, gammas, estimator=est, method="sharp", expected_reward=q)
        lz, hz = bounds_at(r, e, pi, gammas, estimator=est, method="zsb")
        assert (lz <= ls + 1e-12).all() and (hs <= hz + 1e-12).all() and (ls <= hs).all()
        assert (np.diff(hs) >= -1e-12).all() and (np.diff(ls) <= 1e-12).all()  # nested in Gamma
        assert hs[-1] - ls[-1] < hz[-1] - lz[-1]  # and strictly narrower somewhere


def test_breakdown_gamma_matches_a_scan_of_the_box():
    rng = np.random.default_rng(2)
    _, e, _, q = _sample(rng, 10)
    r = np.tile([1.0, 0.0], 5)
    p1, p2 = rng.random(10), rng.random(10)
    assert ((p1 - p2) * r > 0).any() and ((p1 - p2) * r < 0).any()  # a sign that can flip
    found = breakdown_gamma(r, e, p1, p2, estimator="ipw", method="zsb")
    d = p1 - p2
    point = (d * r / e).mean()
    bits = np.array(list(itertools.product((0, 1), repeat=10)), dtype=bool)  # every vertex of the box
    grid = np.exp(np.linspace(0, np.log(200.0), 3000))
    flips = []
    for gamma in grid:
        a, b = weight_box(e, gamma)
        values = (np.where(bits, b, a) * (d * r)).mean(axis=1)
        flips.append((values <= 0).any() if point > 0 else (values >= 0).any())
    first = grid[int(np.argmax(flips))]
    assert any(flips) and not flips[0]
    step = grid[1] / grid[0]
    assert first / step <= found <= first * step, (found, first)
    # sharp bounds are narrower, so their breakdown comes no sooner; with rare clicks (p below
    # the top mass 1/(1 + Gamma)) every click takes the box's extreme weight: the same breakdown
    g = breakdown_gamma(r, e, p1, p2, estimator="ipw", method="sharp", expected_reward=q)
    assert found <= g
    assert found < 150 and breakdown_gamma(r, e, p1, p2, estimator="ipw", method="sharp",
                                           expected_reward=np.full(10, 0.005)) == pytest.approx(found, rel=1e-3)
    q = np.full(10, 0.3)
    g = breakdown_gamma(r, e, p1, p2, estimator="ipw", method="sharp", expected_reward=q)
    assert found < g < np.inf
    for gamma, holds in ((g / 1.01, True), (g * 1.01, False)):
        lo_w, hi_w = (sharp_weights(r, e, q, gamma, upper=u) for u in (False, True))
        w = np.where(d > 0, lo_w, hi_w) if point > 0 else np.where(d > 0, hi_w, lo_w)
        assert (((d * w * r).mean() > 0) == (point > 0)) == holds
    assert breakdown_gamma(r, e, p1, p2, estimator="snipw", method="sharp", expected_reward=q) >= 1.0


def test_gamma_star_by_hand():
    full = np.array([[0.8, 0.2], [0.5, 0.5], [0.1, 0.9]])
    nominal = np.array([[0.5, 0.5], [0.5, 0.5], [0.5, 0.5]])
    out = gamma_star(full, nominal, action=np.array([1, 0, 0]), quantiles=(0.5,))
    # rows: OR 4 (0.8 vs 0.5), 1, 9 (0.1 vs 0.5: odds 1/9); at the logged actions 4, 1, 9
    assert out["gamma_star"] == pytest.approx(9.0) and out["quantiles"]["0.5"] == pytest.approx(4.0)
    assert out["gamma_star_logged"] == pytest.approx(9.0)
    assert odds_ratio(np.array([0.0, 1.0, 0.3]), np.array([0.0, 0.5, 0.3])).tolist() == [1.0, np.inf, 1.0]


def test_bad_inputs_are_one_line_errors(tmp_path):
    r, e, pi = np.ones(3), np.full(3, 0.5), np.full(3, 0.5)
    with pytest.raises(ValueError, match=r"^gammas: expected finite numbers >= 1 \(1: no hidden confounding\), got 0.5$"):
        bounds_at(r, e, pi, [1.0, 0.5], method="zsb")
    with pytest.raises(ValueError, match=r"^gammas: expected a non-empty list of numbers >= 1, got an empty grid$"):
        sensitivity_bounds(r, e, pi, [], method="zsb")
    with pytest.raises(ValueError, match=r"^pscore has 2 rows but reward has 3$"):
        bounds_at(r, e[:2], pi, [1.0], method="zsb")
    with pytest.raises(ValueError, match=r"^expected_reward: method='sharp' needs"):
        bounds_at(r, e, pi, [1.0])
    with pytest.raises(ValueError, match=r"^reward: method='sharp' needs rewards in \{0, 1\}"):
        bounds_at(r * 0.5, e, pi, [1.0], expected_reward=e)
    with pytest.raises(ValueError, match=r"^estimator: expected one of ipw, snipw, got 'dr'$"):
        bounds_at(r, e, pi, [1.0], estimator="dr", method="zsb")
    from recsim_causal.agents import RandomPolicy
    from recsim_causal.ope import evaluate, simulate_log

    path = simulate_log("default", RandomPolicy(n_actions=5), 50, n_items=5).save(tmp_path / "log.parquet")
    with pytest.raises(ValueError, match=r"^sensitivity: needs the log in memory"):
        evaluate(path, ["random"], sensitivity={})
    with pytest.raises(ValueError, match=r"^pi_b_nominal: expected the shape of pi_b_full \(3, 2\), got \(3, 3\)$"):
        gamma_star(np.full((3, 2), 0.5), np.full((3, 3), 1 / 3))


# ------------------------------------------------------------------------------- a confounded world
class _Tables:
    """x in {0, 1, 2} (uniform), hidden u in {0, 1} (P(u=1) = 0.5, independent of x), K = 3.
    The logger leans on u; the reward's click rate rises with u."""

    def __init__(self, lean: float):
        base = np.array([[0.5, 0.3, 0.2], [0.2, 0.5, 0.3], [0.3, 0.2, 0.5]])
        tilt = np.array([lean, -lean / 2, -lean / 2])
        self.pi_b = np.stack([base - tilt, base + tilt], axis=1)  # (x, u, a)
        self.mu = np.array([[0.15, 0.25, 0.2], [0.3, 0.1, 0.2], [0.2, 0.3, 0.1]])[:, None, :] + np.array([0.0, 0.45])[None, :, None]
        self.nominal = self.pi_b.mean(axis=1)  # (x, a)
        self.target = np.array([[0.7, 0.2, 0.1], [0.6, 0.3, 0.1], [0.5, 0.25, 0.25]])  # (x, a)
        self.truth = float((self.target * self.mu.mean(axis=1)).sum(axis=1).mean())
        # E[r | x, a] in the log: u given (x, a) is tilted by the logger
        post = self.pi_b / self.pi_b.sum(axis=1, keepdims=True)
        self.p_obs = (post * self.mu).sum(axis=1)
        self.gamma = gamma_star(self.pi_b.reshape(-1, 3), np.repeat(self.nominal, 2, axis=0))["gamma_star"]

    def log(self, n, rng):
        x, u = rng.integers(0, 3, n), rng.integers(0, 2, n)
        p = self.pi_b[x, u]
        a = (p.cumsum(axis=1) < rng.random((n, 1))).sum(axis=1)
        r = (rng.random(n) < self.mu[x, u, a]).astype(float)
        return r, self.nominal[x, a], self.target[x, a], self.p_obs[x, a]


def test_bounds_at_the_true_gamma_contain_the_truth_and_naive_ips_does_not():
    world = _Tables(lean=0.1)
    assert world.gamma == pytest.approx(2.25)  # 0.6 against 0.4 (odds 1.5 against 2/3)
    hits = {"sharp": 0, "zsb": 0}
    naive_hits = 0
    for seed in range(50):
        r, e, pi, q = world.log(4000, np.random.default_rng(seed))
        for method in hits:
            b = sensitivity_bounds(r, e, pi, [1.0, world.gamma], method=method, expected_reward=q,
                                   n_bootstrap_samples=100, random_state=seed)
            hits[method] += b.lower_ci_low[1] <= world.truth <= b.upper_ci_high[1]
            if method == "sharp":
                naive_hits += b.lower_ci_low[0] <= world.truth <= b.upper_ci_high[0]
    assert hits["sharp"] >= 48 and hits["zsb"] >= 48, hits
    assert naive_hits <= 25, naive_hits  # without the hidden signal the interval misses: the test can fail


def test_doubly_robust_bounds_are_the_cells_lp_and_stay_valid_with_a_wrong_reward_model():
    world = _Tables(lean=0.1)
    gammas = [1.0, world.gamma, 4.0]
    # the population sharp bounds, by a linear program per cell (x, a): max / min E[r e w] over
    # the box with E[e w] = 1, then averaged under the target
    pop = {}
    for upper in (True, False):
        vals = []
        for gamma in gammas:
            v = 0.0
            for x, k in itertools.product(range(3), range(3)):
                e, p = world.nominal[x, k], world.p_obs[x, k]
                L, U = e + (1 - e) / gamma, e + (1 - e) * gamma
                res = linprog([-p if upper else p, 0.0], A_eq=[[p, 1 - p]], b_eq=[1.0], bounds=[(L, U)] * 2, method="highs")
                v += world.target[x, k] * p * res.x[0] / 3
            vals.append(v)
        pop[upper] = np.array(vals)
    hits = {"right": 0, "wrong": 0}
    for seed in range(30):
        rng = np.random.default_rng(100 + seed)
        n = 4000
        x, u = rng.integers(0, 3, n), rng.integers(0, 2, n)
        a = (world.pi_b[x, u].cumsum(axis=1) < rng.random((n, 1))).sum(axis=1)
        r = (rng.random(n) < world.mu[x, u, a]).astype(float)
        E, P = world.nominal[x], world.target[x]
        for name, Q in (("right", world.p_obs[x]), ("wrong", np.full((n, 3), 0.5))):
            b = dr_sensitivity_bounds(r, a, E, P, Q, gammas, n_bootstrap_samples=60, random_state=seed)
            hits[name] += b.lower_ci_low[1] <= world.truth <= b.upper_ci_high[1]
            assert np.all(b.lower <= b.upper + 1e-12) and b.lower[0] == pytest.approx(b.upper[0])
            if seed == 0:  # Gamma = 1: the ordinary DR estimate (the library's estimator)
                dr = DR().estimate_policy_value(reward=r, action=a, pscore=E[np.arange(n), a],
                                                action_dist=P[:, :, None], estimated_rewards_by_reg_model=Q[:, :, None])
                assert b.lower[0] == pytest.approx(dr) and b.estimate == pytest.approx(dr)
    assert hits["right"] >= 28 and hits["wrong"] >= 28, hits
    # one large log: with the right reward model the bounds estimate the LP's, within a few s.e.
    rng = np.random.default_rng(7)
    n = 200_000
    x, u = rng.integers(0, 3, n), rng.integers(0, 2, n)
    a = (world.pi_b[x, u].cumsum(axis=1) < rng.random((n, 1))).sum(axis=1)
    r = (rng.random(n) < world.mu[x, u, a]).astype(float)
    b = dr_sensitivity_bounds(r, a, world.nominal[x], world.target[x], world.p_obs[x], gammas, n_bootstrap_samples=0)
    np.testing.assert_allclose(b.upper, pop[True], atol=0.01)
    np.testing.assert_allclose(b.lower, pop[False], atol=0.01)
    with pytest.raises(ValueError, match=r"^reward: the doubly robust sharp bounds need rewards in \{0, 1\}$"):
        dr_sensitivity_bounds(r * 2, a, world.nominal[x], world.target[x], world.p_obs[x], [1.0])
    with pytest.raises(ValueError, match=r"^gammas: expected finite numbers >= 1"):
        dr_sensitivity_bounds(r, a, world.nominal[x], world.target[x], world.p_obs[x], [0.5])


def test_sensitivity_analysis_of_a_log(tmp_path):
    from recsim_causal.data import LoggedFeedback
    from recsim_causal.ope.sensitivity import sensitivity_analysis

    world = _Tables(lean=0.1)
    rng = np.random.default_rng(3)
    n = 3000
    x, u = rng.integers(0, 3, n), rng.integers(0, 2, n)
    full = world.pi_b[x, u]
    a = (full.cumsum(axis=1) < rng.random((n, 1))).sum(axis=1)
    r = (rng.random(n) < world.mu[x, u, a]).astype(float)
    log = LoggedFeedback(context=np.eye(3)[x], action=a, reward=r, pscore=world.nominal[x, a], n_actions=3,
                         action_dist=world.nominal[x])
    dists = {"target": world.target[x], "uniform": np.full((n, 3), 1 / 3)}
    report = sensitivity_analysis(log, dists, [1.0, 2.25], pairs=[("target", "uniform")],
                                  estimated_rewards=world.p_obs[x], pi_b_full=full, truths={"target": world.truth},
                                  n_bootstrap_samples=50)
    d = report.to_dict()
    assert d["gamma_star"] == pytest.approx(2.25) and set(d["gamma_star_quantiles"]) == {"0.5", "0.9", "0.99"}
    assert set(d["targets"]["target"]) >= {"gammas", "lower", "upper", "lower_ci_low", "upper_ci_high", "truth"}
    assert d["method"] == "sharp" and d["targets"]["target"]["truth"] == world.truth
    t = d["targets"]["target"]
    assert t["zsb_lower"][1] <= t["lower"][1] <= t["upper"][1] <= t["zsb_upper"][1]
    # the same bounds as the array function on the logged action's probabilities
    lo, hi = bounds_at(r, log.pscore, world.target[x, a], [2.25], expected_reward=world.p_obs[x, a])
    assert t["lower"][1] == pytest.approx(lo[0]) and t["upper"][1] == pytest.approx(hi[0])
    # the doubly robust bounds beside them (the log keeps P(a | x) for every action)
    dr = dr_sensitivity_bounds(r, a, world.nominal[x], world.target[x], world.p_obs[x], t["gammas"], n_bootstrap_samples=0)
    assert t["dr_lower"] == pytest.approx(dr.lower.tolist()) and t["dr_upper"] == pytest.approx(dr.upper.tolist())
    assert any(" dr [" in line for line in report.lines())
    row = d["breakdown"][0]
    assert (row["a"], row["b"]) == ("target", "uniform") and row["gamma"] == pytest.approx(breakdown_gamma(
        r, log.pscore, world.target[x, a], np.full(n, 1 / 3), expected_reward=world.p_obs[x, a]))
    assert any(line.startswith("sensitivity: the logger's true Gamma* = 2.25") for line in report.lines())
    # an external log: no truth, no Gamma*, rewards that are not clicks: the box bounds
    ext = LoggedFeedback(context=np.eye(3)[x], action=a, reward=r * 2.0, pscore=world.nominal[x, a], n_actions=3)
    rep = sensitivity_analysis(ext, dists, [1.0, 2.0], n_bootstrap_samples=20)
    assert rep.method == "zsb" and rep.gamma_star is None and rep.to_dict()["targets"]["uniform"]["truth"] is None
    with pytest.raises(ValueError, match=r"^pairs: unknown target 'nope' \(known: target, uniform\)$"):
        sensitivity_analysis(log, dists, [1.0], pairs=[("target", "nope")])
    # pairs=None: the target with the highest estimate against the runner-up, whatever their order
    dists3 = {"uniform": dists["uniform"], "low": np.tile([0.1, 0.1, 0.8], (n, 1)), "target": dists["target"]}
    auto = sensitivity_analysis(log, dists3, [1.0], pairs=None, estimated_rewards=world.p_obs[x], n_bootstrap_samples=0)
    est = {k: float(np.mean(r * dists3[k][np.arange(n), a] / log.pscore)) for k in dists3}  # IPS by hand
    ranked = sorted(est, key=lambda k: -est[k])
    snips = {k: auto.targets[k].estimate for k in dists3}
    assert sorted(snips, key=lambda k: -snips[k])[:2] == ranked[:2]  # the example's ranking is clear
    assert [auto.breakdown[0]["a"], auto.breakdown[0]["b"]] == ranked[:2] and auto.breakdown[0]["difference"] > 0
    # the figure: a PNG with one panel per target
    png = report.plot(tmp_path / "sensitivity.png")
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


@pytest.mark.slow
def test_experiment_ope_reports_sensitivity_on_confounded_and_external_logs(tmp_path):
    import json
    from pathlib import Path

    from hydra import compose, initialize_config_dir

    from recsim_causal.experiment.runner import run_job

    def run(out, *overrides):
        with initialize_config_dir(config_dir=str(Path(__file__).resolve().parents[1] / "conf"), version_base="1.3"):
            cfg = compose(config_name="config", overrides=[
                "experiment=ope", "wandb.mode=disabled", "experiment.ci.n_bootstrap_samples=100",
                "experiment.ci.dm_refits=0", "experiment.use=[ipw,snipw,dm]", "experiment.targets=[random,softmax]",
                "experiment.sensitivity.n_bootstrap_samples=50", *overrides])
        return run_job(cfg, out)

    sim = tmp_path / "sim"
    summary = run(sim, "scm=confounded", "experiment.n_rounds=3000", "experiment.train_rounds=2000",
                  "experiment.truth_users=2000", "env.n_items=20")
    block = json.loads((sim / "ope.json").read_text())["sensitivity"]
    assert block["gamma_star"] > 1 and set(block["gamma_star_quantiles"]) == {"0.5", "0.9", "0.99"}
    assert block["gamma_star"] in block["targets"]["random"]["gammas"]  # Gamma* joins the grid
    for name in ("random", "softmax"):
        t = block["targets"][name]
        assert set(t) >= {"gammas", "lower", "upper", "lower_ci_low", "upper_ci_high", "truth"}
        assert t["truth"] == summary["targets"][name]["truth"]
        assert t["lower"][0] == pytest.approx(summary["targets"][name]["estimators"]["snipw"]["estimate"])
        j = t["gammas"].index(block["gamma_star"])
        assert t["lower_ci_low"][j] <= t["truth"] <= t["upper_ci_high"][j]
    (row,) = block["breakdown"]  # pairs: null compares the best estimate with the runner-up
    est = {k: block["targets"][k]["estimate"] for k in ("random", "softmax")}
    assert [row["a"], row["b"]] == sorted(est, key=lambda k: -est[k]) and row["gamma"] > 1 and row["difference"] > 0
    assert summary["logger"]["agent"]["_target_"].endswith("Softmax")  # the preset's ope_logger
    t = block["targets"]["random"]
    assert t["dr_lower"][j] <= t["dr_upper"][j] and t["dr_estimate"] == pytest.approx(t["dr_lower"][0])
    ipw = summary["confounding"]["random"]["estimators"]["ipw"]
    assert ipw["remaining_se"] > 0 and "remaining = confounding" in summary["table"]
    assert "sensitivity: the logger's true Gamma* = " in summary["table"] and (sim / "sensitivity.png").exists()
    # an external log (the one just written): the bounds without truth or Gamma*, when asked for
    ext = tmp_path / "ext"
    run(ext, f"experiment.data={sim / 'logged.parquet'}", "experiment.sensitivity.enabled=true")
    block = json.loads((ext / "ope.json").read_text())["sensitivity"]
    assert block["gamma_star"] is None and block["targets"]["random"]["truth"] is None
    assert len(block["targets"]["softmax"]["lower"]) == 7 and (ext / "sensitivity.png").exists()
    with pytest.raises(ValueError, match=r"^experiment.sensitivity.gammas: expected finite numbers >= 1 "):
        run(tmp_path / "bad", "experiment.data=" + str(sim / "logged.parquet"), "experiment.sensitivity.enabled=true",
            "experiment.sensitivity.gammas=[0.5,2]")
