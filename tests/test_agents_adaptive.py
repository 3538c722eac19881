"""Adaptive agents against hand cases: discounted and windowed statistics computed by hand,
a two-armed abrupt switch, a change detector, and a text prior for a new item."""

from __future__ import annotations

import numpy as np
import pytest

from recsim_causal.agents import (ChangeRestart, DLinThompson, DLinUCB, LinUCB, LinUCBText, SWLinUCB,
                                  check_policy)

ONE = np.ones((1, 1))


def _feed(agent, history, batch=1):
    """history: list of (arm, reward), context x = 1 (a two-armed bandit as a linear one)."""
    a = np.array([h[0] for h in history])
    r = np.array([h[1] for h in history], dtype=float)
    for i in range(0, len(a), batch):
        agent.update(np.ones((len(a[i:i + batch]), 1)), a[i:i + batch], r[i:i + batch])


HISTORY = [(0, 1.0), (1, 0.0), (0, 1.0), (0, 0.0), (1, 1.0), (1, 1.0), (0, 0.0)]


@pytest.mark.parametrize("batch", [1, 3, 7])
def test_discounted_statistics_by_hand(batch):
    gamma, lam = 0.8, 0.5
    agent = DLinUCB(2, 1, gamma=gamma, lambda_=lam, beta=1.0)
    _feed(agent, HISTORY, batch)
    t = len(HISTORY)
    mean, width = agent.ridge.mean_and_width(ONE, 1.0)
    for arm in (0, 1):
        s = [i + 1 for i, (a, _) in enumerate(HISTORY) if a == arm]  # times 1..t of the arm's rows
        r = [HISTORY[i - 1][1] for i in s]
        v = sum(gamma ** (t - u) for u in s) + lam
        v2 = sum(gamma ** (2 * (t - u)) for u in s) + lam
        b = sum(gamma ** (t - u) * ri for u, ri in zip(s, r))
        assert mean[0, arm] == pytest.approx(b / v, rel=1e-12)
        assert width[0, arm] == pytest.approx(np.sqrt(v2) / v, rel=1e-12)  # ||x||_{V^-1 Vt V^-1}, x = 1


def test_russac_radius_at_the_start_and_in_the_limit():
    agent = DLinUCB(2, 3, gamma=0.99, lambda_=1.0, sigma=1.0, S=1.0, L=1.0, delta=0.01)
    assert agent.width_scale() == pytest.approx(1.0 + np.sqrt(2 * np.log(100)))  # t = 0: no data
    agent.ridge.t = 10**7  # beta -> sqrt(lambda) S + sigma sqrt(2 log(1/delta) + d log(1 + 1 / (d (1 - gamma^2))))
    limit = 1.0 + np.sqrt(2 * np.log(100) + 3 * np.log(1 + 1 / (3 * (1 - 0.99**2))))
    assert agent.width_scale() == pytest.approx(limit)


@pytest.mark.parametrize("batch", [1, 2, 7])
def test_sliding_window_statistics_by_hand(batch):
    lam, w = 0.5, 4
    agent = SWLinUCB(2, 1, window=w, lambda_=lam, beta=1.0)
    _feed(agent, HISTORY, batch)
    mean, width = agent.ridge.mean_and_width(ONE, 1.0)
    last = HISTORY[-w:]
    for arm in (0, 1):
        r = [ri for a, ri in last if a == arm]
        assert mean[0, arm] == pytest.approx(sum(r) / (len(r) + lam), rel=1e-12)
        assert width[0, arm] == pytest.approx(1 / np.sqrt(len(r) + lam), rel=1e-12)


def test_discounted_thompson_posterior_by_hand():
    gamma, lam, v = 0.9, 1.0, 0.5
    agent = DLinThompson(2, 1, gamma=gamma, lambda_=lam, v=v)
    _feed(agent, HISTORY, 2)
    t = len(HISTORY)
    mean, sd = agent.posterior(ONE)
    s = [i + 1 for i, (a, _) in enumerate(HISTORY) if a == 1]
    V = sum(gamma ** (t - u) for u in s) + lam
    V2 = sum(gamma ** (2 * (t - u)) for u in s) + lam
    assert mean[0, 1] == pytest.approx(sum(gamma ** (t - u) for u in s[1:]) / V)  # arm 1 earned 0, 1, 1
    assert sd[0, 1] == pytest.approx(v * np.sqrt(V2) / V)
    probs = agent.action_probs(ONE)
    assert probs.sum() == pytest.approx(1.0) and probs[0, 1] > probs[0, 0]


def _switch_run(agent, n_before=1500, n_after=1500):
    """Two arms, noise-free rewards (0.9, 0.1) then (0.1, 0.9): how many steps after the switch
    until the agent plays the new best arm 20 times in a row."""
    means = np.array([[0.9, 0.1], [0.1, 0.9]])
    rng = np.random.default_rng(0)
    streak, recovered = 0, None
    for t in range(n_before + n_after):
        phase = int(t >= n_before)
        a, _ = agent.act(ONE, rng)
        agent.update(ONE, a, means[phase, a])
        if phase:
            streak = streak + 1 if a[0] == 1 else 0
            if streak == 20 and recovered is None:
                recovered = t - n_before
    return recovered


def test_adaptive_agents_recover_from_an_abrupt_switch_linucb_does_not():
    assert _switch_run(LinUCB(2, 1, alpha=0.5)) is None  # its estimate of arm 0 is still above 0.45 after 1500
    assert _switch_run(DLinUCB(2, 1, gamma=0.98, beta=0.5)) < 150
    assert _switch_run(SWLinUCB(2, 1, window=100, beta=0.5)) < 150
    assert _switch_run(DLinThompson(2, 1, gamma=0.98, v=0.1)) < 200
    restart = ChangeRestart(2, 1, {"_target_": "recsim_causal.agents.LinUCB", "alpha": 0.5}, threshold=20.0,
                            drift=0.05, warmup=200)
    assert _switch_run(restart) < 150
    assert len(restart.restarts) == 1 and 1500 < restart.restarts[0] < 1550  # one alarm, just after the switch


def test_cusum_alarm_time_by_hand():
    """Reference mean m = 1 (warmup 10 ones), then rewards 0: g grows by (1 - 0) - 0.1 = 0.9 a
    row and passes h = 4 at the 5th zero (4.5 > 4)."""
    restart = ChangeRestart(2, 1, {"_target_": "recsim_causal.agents.LinUCB"}, threshold=4.0, drift=0.1, warmup=10)
    rewards = np.r_[np.ones(10), np.ones(3), np.zeros(20)]
    restart.update(np.ones((33, 1)), np.zeros(33, dtype=np.int64), rewards)
    assert restart.restarts == [18]
    assert restart.inner.ridge.b.sum() == 0.0  # the fresh agent saw rows 18.. (all zeros)


def test_policy_contract_of_the_adaptive_agents():
    rng = np.random.default_rng(0)
    for agent in (DLinUCB(5, 3), SWLinUCB(5, 3, window=50), DLinThompson(5, 3), DLinUCB(5, 10, shared=True),
                  SWLinUCB(5, 10, window=9, shared=True), LinUCB(5, 10, shared=True),
                  ChangeRestart(5, 3, {"_target_": "recsim_causal.agents.LinUCB"})):
        x = rng.normal(size=(64, agent.dim))
        agent.update(x, rng.integers(5, size=64), rng.random(64))
        check_policy(agent, x, rng)


def _toy_encoder(texts):
    table = {"good": [1.0, 0.0, 0.2], "bad": [0.0, 1.0, 0.1], "fine": [0.9, 0.1, 0.0], "poor": [0.1, 0.9, 0.3]}
    return np.array([table[t] for t in texts])


def test_linucb_text_scores_a_new_item_from_its_text():
    texts = ["good", "bad", "fine", "poor"]
    agent = LinUCBText(4, 2, item_texts=texts, encoder=_toy_encoder, alpha=0.0, lambda_=1.0, refit_every=1)
    rng = np.random.default_rng(0)
    x = np.c_[np.ones(400), rng.normal(size=400)]
    a = rng.integers(4, size=400)
    r = np.where(np.isin(a, [0, 2]), 1.0, 0.0)  # the good-sounding items are the good ones
    agent.update(x, a, r)
    # the arm's estimate is the ridge solution shrunk toward the text prior, by hand
    theta0 = agent.prior()
    for k in range(4):
        rows = a == k
        A = x[rows].T @ x[rows] + np.eye(2)
        expect = np.linalg.solve(A, x[rows].T @ r[rows] + theta0[k])
        np.testing.assert_allclose(agent._theta[k], expect, rtol=1e-9, atol=1e-12)
    # two new items arrive: the id-only LinUCB knows nothing of them, the text agent places them
    idonly = LinUCB(4, 2, alpha=0.0)
    idonly.update(x, a, r)
    for agent_ in (agent, idonly):
        agent_.new_items([1, 2], ["good", "bad"])
    q = agent.scores(np.array([[1.0, 0.0]]))[0]
    assert q[1] > 0.8 and q[2] < 0.2  # slot 1 now holds a "good" item, slot 2 a "bad" one
    assert idonly.scores(np.array([[1.0, 0.0]]))[0][[1, 2]].tolist() == [0.0, 0.0]


def test_shared_model_on_action_features_by_hand():
    """shared=True: one model for all actions on per-action features (a linear bandit)."""
    rng = np.random.default_rng(1)
    x = rng.normal(size=(40, 3 * 2))  # 3 actions x 2 features per decision
    a = rng.integers(3, size=40)
    r = rng.normal(size=40)
    feats = x.reshape(40, 3, 2)[np.arange(40), a]
    theta = np.linalg.solve(feats.T @ feats + 0.5 * np.eye(2), feats.T @ r)  # ridge by hand
    for agent in (LinUCB(3, 6, alpha=0.0, lambda_=0.5, shared=True), DLinUCB(3, 6, gamma=1.0, beta=0.0, lambda_=0.5,
                                                                               shared=True)):
        agent.update(x, a, r)
        np.testing.assert_allclose(agent.scores(x[:5]), x[:5].reshape(5, 3, 2) @ theta, rtol=1e-9)


def test_adaptive_agents_do_not_claim_linucbs_slope_contract():
    """Propensity bounds use scores_with_slope when it is callable: only LinUCB's own ridge has it."""
    assert callable(getattr(LinUCB(3, 2), "scores_with_slope", None))
    for agent in (DLinUCB(3, 2), SWLinUCB(3, 2), LinUCBText(3, 2, item_texts=["good", "bad", "fine"],
                                                             encoder=_toy_encoder)):
        assert not callable(getattr(agent, "scores_with_slope", None))


@pytest.mark.parametrize("gamma, window", [(0.97, None), (1.0, 30)])
def test_one_row_fast_path_against_brute_force_linear_algebra(gamma, window):
    """K = 4, d = 5, rows one at a time: every arm's V = sum w_s x x^T + lambda I built from the
    raw rows (weights gamma^(t - s), or 1 inside the window), its inverse by numpy; the one-row
    path and the batch path of the ridge both agree with it."""
    rng = np.random.default_rng(3)
    K, d, lam, n = 4, 5, 0.7, 120
    from recsim_causal.agents.adaptive import ForgettingRidge

    ridge = ForgettingRidge(K, d, lam, gamma=gamma, window=window)
    xs, acts, rs = rng.normal(size=(n, d)), rng.integers(0, K, n), rng.normal(size=n)
    for i in range(n):
        ridge.update(xs[i:i + 1], acts[i:i + 1], rs[i:i + 1])
    w = gamma ** (n - 1 - np.arange(n)) if window is None else (np.arange(n) >= n - window).astype(float)
    queries = rng.normal(size=(3, d))
    for k in range(K):
        m = acts == k
        V = (w[m, None, None] * xs[m, :, None] * xs[m, None, :]).sum(0) + lam * np.eye(d)
        Vt = ((w[m] ** 2)[:, None, None] * xs[m, :, None] * xs[m, None, :]).sum(0) + lam * np.eye(d)
        Vi = np.linalg.inv(V)
        theta = Vi @ ((w[m] * rs[m]) @ xs[m])
        for j, q in enumerate(queries):
            one_mean, one_width = ridge.mean_and_width(q[None], 2.0)
            all_mean, all_width = ridge.mean_and_width(queries, 2.0)
            assert one_mean[0, k] == pytest.approx(q @ theta, rel=1e-8, abs=1e-10)
            assert all_mean[j, k] == pytest.approx(q @ theta, rel=1e-8, abs=1e-10)
            assert one_width[0, k] == pytest.approx(2 * np.sqrt(q @ Vi @ Vt @ Vi @ q), rel=1e-8)
            assert all_width[j, k] == pytest.approx(2 * np.sqrt(q @ Vi @ Vt @ Vi @ q), rel=1e-8)
