"""Session OPE: exact DR with the true Q (backward induction on a tabular MDP), PDIS unbiased
against rollout truth on Session-v0, one-step sessions = one-item IPS, FQE, SN formulas by hand."""

import numpy as np
import pytest

from recsim_causal.data import LoggedFeedback, load_parquet, save_parquet
from recsim_causal.envs import SessionVectorEnv
from recsim_causal.ope.session_log import run_sessions
from recsim_causal.ope import (
    FQE,
    IPS,
    MDR,
    MIS,
    FeatureFQE,
    StateMarginalWeights,
    Trajectories,
    refit_intervals,
    PDIS,
    SNPDIS,
    SNSeqDR,
    SNTIS,
    TIS,
    SeqDM,
    SeqDR,
    estimate_all_sequential,
)


def tabular_mdp(seed=0, S=4, K=3, H=3, n=3000, deterministic=True, with_model=False):
    """A finite-horizon MDP with deterministic transitions and rewards, random logger and target;
    the exact Q of the target by backward induction; n logged trajectories."""
    rng = np.random.default_rng(seed)
    nxt = rng.integers(0, S, (H, S, K))
    R = rng.random((H, S, K))
    pb = rng.dirichlet(np.ones(K), (H, S))
    pe = rng.dirichlet(np.ones(K), (H, S))
    Q, V = np.zeros((H + 1, S, K)), np.zeros((H + 1, S))
    for h in range(H - 1, -1, -1):
        Q[h] = R[h] + V[h + 1][nxt[h]]
        V[h] = (pe[h] * Q[h]).sum(-1)
    s = rng.integers(0, S, n)
    s0 = s.copy()
    cols = {k: [] for k in ("trajectory_id", "t", "state", "action", "reward", "pscore", "dist", "q")}
    for h in range(H):
        u = rng.random(n)[:, None]
        a = (pb[h, s].cumsum(axis=1) < u).sum(axis=1)
        for k, v in (("trajectory_id", np.arange(n)), ("t", np.full(n, h)), ("state", s), ("action", a),
                     ("reward", R[h, s, a]), ("pscore", pb[h, s, a]), ("dist", pe[h, s]), ("q", Q[h, s])):
            cols[k].append(v)
        s = nxt[h, s, a]
    c = {k: np.stack(v, axis=1).reshape(n * H, *np.shape(v[0])[1:]) for k, v in cols.items()}
    arrays = dict(trajectory_id=c["trajectory_id"], action=c["action"], reward=c["reward"], pscore=c["pscore"],
                  evaluation_policy_action_dist=c["dist"])
    if with_model:
        return arrays, c, V[0][s0], (S, K, H), dict(nxt=nxt, pb=pb, pe=pe)
    return arrays, c, V[0][s0], (S, K, H)


def test_dr_is_exact_for_every_trajectory_when_q_is_the_truth():
    arrays, c, v0, _ = tabular_mdp()
    arrays["state_action_value_prediction"] = c["q"]
    per_trajectory = SeqDR().parts(**arrays)[0].num
    np.testing.assert_allclose(per_trajectory, v0, atol=1e-12)  # telescopes: the weights cancel
    for est in (SeqDR(), SNSeqDR(), SeqDM()):
        assert est.estimate_policy_value(**arrays) == pytest.approx(v0.mean(), abs=1e-12)


def test_fqe_recovers_the_tabular_q():
    arrays, c, _, (S, K, H) = tabular_mdp(n=4000)
    x = np.zeros((len(c["state"]), S * H))
    x[np.arange(len(x)), c["t"] * S + c["state"]] = 1.0  # one-hot (step, state): Q is linear in it
    q = FQE(K, ridge=1e-8).fit_predict(context=x, action=arrays["action"], reward=arrays["reward"],
                                       trajectory_id=arrays["trajectory_id"],
                                       evaluation_policy_action_dist=arrays["evaluation_policy_action_dist"])
    np.testing.assert_allclose(q, c["q"], atol=1e-5)


def test_is_estimators_are_unbiased_on_the_tabular_mdp():
    """Exact value E[V(s0)]: TIS and PDIS within 3 s.e. over 20k trajectories."""
    arrays, _, v0, _ = tabular_mdp(n=20000, seed=1)
    for est in (TIS(), PDIS()):
        d = est.parts(**arrays)[0].num - v0
        assert abs(d.mean()) < 3 * d.std(ddof=1) / np.sqrt(len(d)), type(est).__name__


def test_self_normalized_formulas_by_hand():
    # two trajectories of two steps: ratios (2, 1) and (0.5, 4); rewards (1, 1) and (0, 2)
    arrays = dict(step_per_trajectory=2, reward=np.array([1.0, 1, 0, 2]), pscore=np.array([0.25, 0.5, 0.5, 0.125]),
                  evaluation_policy_pscore=np.array([0.5, 0.5, 0.25, 0.5]))
    # w_{0:0} = (2, .5), w_{0:1} = (2, 2)
    assert TIS().estimate_policy_value(**arrays) == pytest.approx((2 * 2 + 2 * 2) / 2)
    assert PDIS().estimate_policy_value(**arrays) == pytest.approx((2 * 1 + 2 * 1 + 0.5 * 0 + 2 * 2) / 2)
    assert SNTIS().estimate_policy_value(**arrays) == pytest.approx((2 * 2 + 2 * 2) / 2 / 2)
    assert SNPDIS().estimate_policy_value(**arrays) == pytest.approx((2 * 1 + 0.5 * 0) / 2.5 + (2 * 1 + 2 * 2) / 4)
    assert PDIS().estimate_policy_value(gamma=0.5, **arrays) == pytest.approx((2 + 0.5 * 2 + 0.5 * 4) / 2)
    # the same data as two variable-length ids
    ids = dict(arrays, trajectory_id=np.array([7, 7, 3, 3]))
    ids.pop("step_per_trajectory")
    assert SNPDIS().estimate_policy_value(**ids) == pytest.approx(SNPDIS().estimate_policy_value(**arrays))


def test_short_sessions_are_padded_as_absorbing():
    # one session of 1 step (ratio 2, reward 1) and one of 3 steps (ratios 1, 2, .5, rewards 1, 1, 1)
    arrays = dict(trajectory_id=np.array([0, 1, 1, 1]), reward=np.ones(4), pscore=np.array([0.25, 0.5, 0.25, 0.5]),
                  evaluation_policy_pscore=np.array([0.5, 0.5, 0.5, 0.25]))
    assert PDIS().estimate_policy_value(**arrays) == pytest.approx((2 + (1 + 2 + 1)) / 2)
    assert TIS().estimate_policy_value(**arrays) == pytest.approx((2 * 1 + 1 * 3) / 2)
    # SNPDIS: step 0 weights (2, 1), step 1 (2, 2), step 2 (2, 1): the ended session keeps its weight
    assert SNPDIS().estimate_policy_value(**arrays) == pytest.approx(3 / 3 + 2 / 4 + 1 / 3)


def session_env(max_steps, n_items=8, num_envs=1024):
    return SessionVectorEnv(num_envs, n_items=n_items, scm="default", world_seed=0, dtype="float64",
                            max_steps=max_steps)


class LinearSoftmax:
    """A fixed stochastic policy over Session-v0 observations."""

    def __init__(self, K, dim, seed, scale):
        self.n_actions, self.W = K, np.random.default_rng(seed).normal(scale=scale, size=(dim, K))

    def action_probs(self, x):
        z = x @ self.W
        e = np.exp(z - z.max(axis=1, keepdims=True))
        return e / e.sum(axis=1, keepdims=True)


def test_pdis_is_unbiased_against_rollout_truth_on_session_v0():
    env = session_env(max_steps=4)
    K, dim = env.world.n_items, env.single_observation_space.shape[0]
    target = LinearSoftmax(K, dim, 1, 0.5)
    uniform = lambda x: np.full((len(x), K), 1.0 / K)  # noqa: E731  (bounded weights: the CLT holds at n=20k)
    _, steps = run_sessions(env, uniform, 20000, 5, record=True)
    est = PDIS().parts(trajectory_id=steps["trajectory_id"], action=steps["action"], reward=steps["reward"],
                       pscore=steps["pscore"], evaluation_policy_action_dist=target.action_probs(steps["context"]))[0].num
    returns, _ = run_sessions(env, target.action_probs, 100000, 6)
    se = np.sqrt(est.var(ddof=1) / len(est) + returns.var(ddof=1) / len(returns))
    assert abs(est.mean() - returns.mean()) < 3 * se
    assert returns.var(ddof=1) / len(returns) < est.var(ddof=1) / len(est) / 4  # the truth is the sharper one
    # the same sessions again: the rollouts are reproducible from their seed
    again, _ = run_sessions(env, target.action_probs, 100000, 6)
    np.testing.assert_array_equal(again, returns)


def test_one_step_sessions_reduce_to_one_item_ips():
    env = session_env(max_steps=1)
    K, dim = env.world.n_items, env.single_observation_space.shape[0]
    logger, target = LinearSoftmax(K, dim, 0, 0.3), LinearSoftmax(K, dim, 1, 0.6)
    _, steps = run_sessions(env, logger.action_probs, 3000, 1, record=True)
    dist = target.action_probs(steps["context"])
    ips = IPS().estimate_policy_value(reward=steps["reward"], action=steps["action"], pscore=steps["pscore"],
                                      action_dist=dist)
    for est in (TIS(), PDIS()):
        for layout in (dict(trajectory_id=steps["trajectory_id"]), dict(step_per_trajectory=1)):
            v = est.estimate_policy_value(action=steps["action"], reward=steps["reward"], pscore=steps["pscore"],
                                          evaluation_policy_action_dist=dist, **layout)
            assert v == pytest.approx(ips, rel=1e-12)


def test_logged_sessions_round_trip_through_parquet(tmp_path):
    env = session_env(max_steps=5, num_envs=256)
    K, dim = env.world.n_items, env.single_observation_space.shape[0]
    _, steps = run_sessions(env, LinearSoftmax(K, dim, 0, 0.3).action_probs, 300, 2, record=True)
    fb = LoggedFeedback(n_actions=K, **steps)
    assert (np.bincount(fb.trajectory_id) >= 1).all() and fb.step.max() <= 4
    last = np.append(fb.trajectory_id[1:] != fb.trajectory_id[:-1], True)
    assert ((fb.terminated | fb.truncated) == last).all()  # a session ends exactly at its last row
    back = load_parquet(save_parquet(fb, tmp_path / "log.parquet"))
    for k in ("trajectory_id", "step", "terminated", "truncated", "reward", "pscore"):
        np.testing.assert_array_equal(getattr(back, k), getattr(fb, k))
    est, ints, data = estimate_all_sequential([PDIS(), SNPDIS()], trajectory_id=back.trajectory_id, action=back.action,
                                              reward=back.reward, pscore=back.pscore,
                                              evaluation_policy_action_dist=back.action_dist, n_bootstrap_samples=200,
                                              random_state=0)
    # the target is the logger: every weight is 1, so PDIS and SNPDIS are the mean return
    assert est["pdis"] == pytest.approx(np.bincount(data.unit, data.reward[data.mask]).mean())
    assert est["snpdis"] == pytest.approx(est["pdis"])
    assert ints["pdis"]["95.0% CI (lower)"] < est["pdis"] < ints["pdis"]["95.0% CI (upper)"]


@pytest.mark.parametrize("kw, message", [
    (dict(gamma=0.0), r"^gamma: expected a number in \(0, 1\], got 0.0$"),
    (dict(pscore=np.array([0.0, 0.5])), r"^pscore: must be in \(0, 1\]"),
    (dict(trajectory_id=np.array([0, 1, 0])), r"^reward: expected shape \(3,\)|^trajectory_id"),
    (dict(step_per_trajectory=3), r"^step_per_trajectory: expected an integer >= 1 dividing n_steps=2"),
])
def test_bad_sequential_input_is_named(kw, message):
    arrays = dict(reward=np.array([1.0, 0.0]), pscore=np.array([0.5, 0.5]), evaluation_policy_pscore=np.array([0.5, 0.5]),
                  trajectory_id=np.array([0, 0]))
    if "step_per_trajectory" in kw:
        arrays.pop("trajectory_id")
    with pytest.raises(ValueError, match=message):
        PDIS().estimate_policy_value(**{**arrays, **kw})


def _state_distributions(nxt, pi, S, H):
    """d_h(s) of a policy pi (H, S, K) from the uniform start, by the forward recursion."""
    d = np.zeros((H, S))
    d[0] = 1.0 / S
    for h in range(H - 1):
        for s in range(S):
            np.add.at(d[h + 1], nxt[h, s], d[h, s] * pi[h, s])
    return d


def test_state_marginal_weights_mis_and_mdr_on_the_tabular_mdp():
    arrays, c, v0, (S, K, H), m = tabular_mdp(n=20000, seed=2, H=4, with_model=True)
    exact = _state_distributions(m["nxt"], m["pe"], S, H) / _state_distributions(m["nxt"], m["pb"], S, H)
    one_hot = np.eye(S)[c["state"]]
    ratio = arrays["evaluation_policy_action_dist"][np.arange(len(c["state"])), arrays["action"]] / arrays["pscore"]
    fit = lambda cnt: StateMarginalWeights(ridge=1e-8).fit_predict(  # noqa: E731
        state_features=one_hot, ratio=ratio, trajectory_id=arrays["trajectory_id"], sample_weight=cnt)
    sw = fit(None)
    # the regression is the cell mean of the previous weight times the ratio: noisy where the
    # logger rarely goes (heavy ratios), exact in expectation
    rel = np.abs(sw / exact[c["t"], c["state"]] - 1)
    assert np.median(rel) < 0.03 and rel.mean() < 0.1, (np.median(rel), rel.mean())
    data = Trajectories(**arrays, state_action_value_prediction=c["q"], state_marginal_weight=sw)
    mis = MIS().parts(data)[0].num
    assert abs(mis.mean() - v0.mean()) < 3 * mis.std(ddof=1) / np.sqrt(len(mis))
    # MDR with the true Q telescopes to V(s_0) on every trajectory, whatever the weights
    np.testing.assert_allclose(MDR().parts(data)[0].num, v0, atol=1e-12)
    iv = refit_intervals([MIS()], data, fit, n_bootstrap_samples=100, random_state=0)["mis"]
    assert iv["95.0% CI (lower)"] <= v0.mean() <= iv["95.0% CI (upper)"]


def test_feature_fqe_is_exact_when_q_is_bilinear_in_state_and_item_features():
    # one-step sessions with reward phi(s)^T M psi(a): Q is in the class, so DM is the exact value
    rng = np.random.default_rng(3)
    n, d, p, K = 4000, 3, 2, 6
    x, items = rng.normal(size=(n, d)), rng.normal(size=(K, p))
    M = rng.normal(size=(d + 1, p + 1))
    phi, psi = np.c_[x, np.ones(n)], np.c_[items, np.ones(K)]
    a = rng.integers(0, K, n)
    pi_e = rng.dirichlet(np.ones(K), n)
    r = np.einsum("im,mq,iq->i", phi, M, psi[a])
    q = FeatureFQE(items, ridge=1e-8).fit_predict(state_features=phi, action=a, reward=r, trajectory_id=np.arange(n),
                                                  evaluation_policy_action_dist=pi_e)
    np.testing.assert_allclose(q, phi @ M @ psi.T, atol=1e-5)


def test_trajectory_weights_far_below_their_mean_of_one_mark_tis_invalid():
    # every logged session took the action the target almost never takes: all weights equal and
    # tiny, so the ESS is n, but their mean (1 under the logger) is ~4e-9: the target's likely
    # sessions are missing and TIS/SNTIS/PDIS must not be marked valid, whatever the ESS says
    from recsim_causal.ope.diagnostics import validity_rows

    n, T = 1000, 5
    rng = np.random.default_rng(0)
    arrays = dict(trajectory_id=np.repeat(np.arange(n), T), action=np.ones(n * T, int), reward=rng.random(n * T),
                  pscore=np.full(n * T, 0.98), evaluation_policy_action_dist=np.tile([0.98, 0.02], (n * T, 1)))
    ests = {e.estimator_name: e for e in (TIS(), SNTIS(), PDIS(), SNPDIS())}
    est, _, data = estimate_all_sequential(list(ests.values()), intervals=False, **arrays)
    diags = {k: e.weight_diagnostics(data) for k, e in ests.items()}
    assert diags["tis"]["ess"] == pytest.approx(n)
    assert diags["tis"]["mean_weight"] == pytest.approx((0.02 / 0.98) ** T)
    rows = validity_rows(ests, diags, est, "bootstrap", reward_bounded=False)
    for k in ests:
        assert rows[k]["interval_valid"] is False and rows[k]["invalid_reason"].startswith("mean weight"), rows[k]
    assert rows["pdis"]["diagnostics"]["step_mean_weight"][0] == pytest.approx(0.02 / 0.98)
    # the same log read as the logger's own: weights 1, mean 1, every row valid
    arrays["evaluation_policy_action_dist"] = np.tile([0.02, 0.98], (n * T, 1))
    est, _, data = estimate_all_sequential(list(ests.values()), intervals=False, **arrays)
    rows = validity_rows(ests, {k: e.weight_diagnostics(data) for k, e in ests.items()}, est, "bootstrap",
                         reward_bounded=False)
    assert all(r["interval_valid"] for r in rows.values()), rows


def test_state_marginal_weights_keep_the_constant_moment_after_clipping():
    # a linear class that cannot hold the ratio fits negative weights; clipped at 0 they are
    # rescaled so that each step's mean weight equals the previous step's mean of w_t rho_t
    # (the moment of the constant test function), which the unclipped least squares had
    arrays, c, v0, (S, K, H) = tabular_mdp(n=4000, seed=5, H=4)
    x = (c["state"] - 1.5)[:, None]  # a line through the states without intercept: negative at one end
    ratio = arrays["evaluation_policy_action_dist"][np.arange(len(x)), arrays["action"]] / arrays["pscore"]
    cnt = np.random.default_rng(1).poisson(1.0, len(x)).astype(float)
    w = StateMarginalWeights(ridge=1e-6).fit_predict(state_features=x, ratio=ratio,
                                                     trajectory_id=arrays["trajectory_id"], sample_weight=cnt)
    assert w.min() == 0.0  # some were clipped
    for t in range(1, H):
        now, prev = c["t"] == t, c["t"] == t - 1
        lhs = np.dot(cnt[now], w[now])
        rhs = np.dot(cnt[now], w[prev] * ratio[prev])  # rows of one trajectory: step t follows step t - 1
        assert lhs == pytest.approx(rhs, rel=1e-9)


def test_feature_fqe_row_weights_equal_repeated_rows():
    # weighted by integer counts, FQE must fit what it fits on the log with each session repeated
    rng = np.random.default_rng(4)
    n, T, K = 300, 3, 5
    tid = np.repeat(np.arange(n), T)
    x, items = rng.normal(size=(n * T, 2)), rng.normal(size=(K, 2))
    a, r = rng.integers(0, K, n * T), rng.random(n * T)
    pi_e = rng.dirichlet(np.ones(K), n * T)
    counts = rng.integers(0, 3, n)
    fit = dict(action=a, reward=r, trajectory_id=tid, evaluation_policy_action_dist=pi_e)
    q_w = FeatureFQE(items, ridge=1e-9).fit_predict(state_features=x, sample_weight=np.repeat(counts, T), **fit)
    rows = np.concatenate([np.arange(i * T, (i + 1) * T) for i in range(n) for _ in range(counts[i])])
    new_tid = np.repeat(np.arange(len(rows) // T), T)
    q_rep = FeatureFQE(items, ridge=1e-9).fit_predict(state_features=x[rows], action=a[rows], reward=r[rows], trajectory_id=new_tid,
                                          evaluation_policy_action_dist=pi_e[rows])
    # (a negligible ridge: the features are standardized on the rows given, so only its scale differs)
    np.testing.assert_allclose(q_w[rows], q_rep, atol=1e-6)
