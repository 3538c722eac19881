"""OPE estimators: hand-computed values, OBP 0.5.7 parity, dense/light agreement, validation,
and statistical properties (unbiasedness, consistency, variance) on a small known world."""

from __future__ import annotations

import warnings

import numpy as np
import pytest

from recsim_causal.ope import (
    DM,
    DR,
    IPS,
    MIPS,
    SGDR,
    SNMIPS,
    SNDR,
    SNIPS,
    DRos,
    LightInputs,
    SubGaussianIPS,
    SupportViolationWarning,
    SwitchDR,
    estimate_all,
    estimate_all_light,
    p_e_a_from_clusters,
    policy_value,
    reduce_dense,
)

# --------------------------------------------------------------------------- a 4-round example
# K = 3 actions; every number below can be checked by hand.
ACTION = np.array([0, 1, 2, 1])
REWARD = np.array([1.0, 0.0, 1.0, 1.0])
PSCORE = np.array([0.5, 0.25, 0.25, 0.5])
PI_B = np.array([[0.5, 0.25, 0.25], [0.5, 0.25, 0.25], [0.5, 0.25, 0.25], [0.25, 0.5, 0.25]])
PI_E = np.array([[0.5, 0.25, 0.25], [0.0, 0.5, 0.5], [0.25, 0.25, 0.5], [1.0, 0.0, 0.0]])
QHAT = np.array([[0.5, 0.5, 0.5], [0.2, 0.4, 0.6], [0.4, 0.4, 0.8], [0.8, 0.2, 0.2]])
# pi_e(a_i|x_i) = [0.5, 0.5, 0.5, 0]          -> w = pi_e / pscore = [1, 2, 2, 0]
# qhat(x_i, pi_e) = [0.5, 0.5, 0.6, 0.8]       (row 2: .25*.4 + .25*.4 + .5*.8 = .6)
# qhat(x_i, a_i)  = [0.5, 0.4, 0.8, 0.2]       -> r - qhat(x_i, a_i) = [0.5, -0.4, 0.2, 0.8]
# w * r = [1, 0, 2, 0];  w * (r - qhat) = [0.5, -0.8, 0.4, 0]  (sum 0.1)
HAND = {
    # IPW     = mean(w r) = 3/4
    "ipw": 0.75,
    # SNIPW   = sum(w r) / sum(w) = 3/5
    "snipw": 0.6,
    # DM      = mean(qhat(x, pi_e)) = 2.4/4
    "dm": 0.6,
    # DR      = DM + mean(w (r - qhat)) = 0.6 + 0.1/4
    "dr": 0.625,
    # SNDR    = DM + sum(w (r - qhat)) / sum(w) = 0.6 + 0.1/5
    "sndr": 0.62,
    # Switch-DR, lambda=1.5: only w=1 and w=0 rounds keep the correction: 0.6 + 0.5/4
    "switch-dr": 0.725,
    # DRos, lambda=2: w_hat = 2w/(w^2+2) = [2/3, 2/3, 2/3, 0]; correction (2/3)(0.5-0.4+0.2)/4 = 0.05
    "dr-os": 0.65,
    # SG-IPW, lambda=0.5: w_hat = w/(0.5+0.5w) = [1, 4/3, 4/3, 0]; mean(w_hat r) = (1 + 4/3)/4 = 7/12
    "sg-ipw": 7 / 12,
    # clipped IPW, lambda=1.5: min(w, 1.5) = [1, 1.5, 1.5, 0]; mean(. r) = 2.5/4
    "ipw-clip": 0.625,
    # SG-DR, lambda=0.5: DM + mean(w_hat (r - qhat)) = 0.6 + (0.5 - 0.4*4/3 + 0.2*4/3)/4 = 0.6 + (7/30)/4
    "sg-dr": 0.6 + (0.5 - 0.8 / 3) / 4,
}
# MIPS with clusters [0, 1, 1] (item 0 alone; items 1 and 2 together): e_i = [0, 1, 1, 1];
# p(e_i|x_i, pi_b) = [0.5, 0.5, 0.5, 0.75], p(e_i|x_i, pi_e) = [0.5, 1.0, 0.75, 0.0]
# -> w(x, e) = [1, 2, 1.5, 0]; MIPS = mean(w r) = (1 + 1.5)/4
HAND["mipw"] = 0.625

HAND_ESTIMATORS = [
    IPS(),
    SNIPS(),
    DM(),
    DR(),
    SNDR(),
    SwitchDR(lambda_=1.5),
    DRos(lambda_=2.0),
    SubGaussianIPS(lambda_=0.5),
    IPS(lambda_=1.5, estimator_name="ipw-clip"),
    SGDR(lambda_=0.5),
]


def _hand_arrays(three_d: bool = True) -> dict:
    expand = (lambda a: a[:, :, None]) if three_d else (lambda a: a)
    return dict(
        reward=REWARD,
        action=ACTION,
        pscore=PSCORE,
        action_dist=expand(PI_E),
        estimated_rewards_by_reg_model=expand(QHAT),
    )


@pytest.mark.parametrize("three_d", [True, False])
def test_hand_computed_values(three_d):
    arrays = _hand_arrays(three_d)
    for est in HAND_ESTIMATORS:
        assert est.estimate_policy_value(**arrays) == pytest.approx(HAND[est.estimator_name], rel=1e-12)
    mips = MIPS(n_actions=3)
    cluster = np.array([0, 1, 1])
    value = mips.estimate_policy_value(
        reward=REWARD,
        action=ACTION,
        action_dist=PI_E,
        pi_b=PI_B,
        action_embed=cluster[ACTION][:, None],
        p_e_a=p_e_a_from_clusters(cluster),
    )
    assert value == pytest.approx(HAND["mipw"], rel=1e-12)


def test_hand_values_via_estimate_all_and_light():
    got = estimate_all(HAND_ESTIMATORS, **_hand_arrays())
    assert got == pytest.approx({e.estimator_name: HAND[e.estimator_name] for e in HAND_ESTIMATORS}, rel=1e-12)
    light = dict(
        reward=REWARD,
        pscore=PSCORE,
        target_pscore=np.array([0.5, 0.5, 0.5, 0.0]),
        target_q=np.array([0.5, 0.5, 0.6, 0.8]),
        q_at_action=np.array([0.5, 0.4, 0.8, 0.2]),
    )
    for est in HAND_ESTIMATORS:
        assert est.estimate_policy_value_light(**light) == pytest.approx(HAND[est.estimator_name], rel=1e-12)
    assert MIPS().estimate_policy_value_light(
        reward=REWARD, embed_pscore=np.array([0.5, 0.5, 0.5, 0.75]), embed_target_pscore=np.array([0.5, 1.0, 0.75, 0.0])
    ) == pytest.approx(HAND["mipw"], rel=1e-12)


# --------------------------------------------------------------------------- OBP 0.5.7 transcription
# The formulas of obp/ope/estimators.py (v0.5.7), written out as OBP computes them, on 3-D
# arrays with positions. Our estimators must give the same numbers from the same arrays.
def obp_round_rewards(name, lam, reward, action, pscore, action_dist, qhat, position):
    n = action.shape[0]
    iw = action_dist[np.arange(n), action, position] / pscore
    q_pos = qhat[np.arange(n), :, position]
    q_fact = qhat[np.arange(n), action, position]
    pi_pos = action_dist[np.arange(n), :, position]
    dm = np.average(q_pos, weights=pi_pos, axis=1)
    if name == "ipw":
        return reward * np.minimum(iw, lam)
    if name == "snipw":
        return reward * iw / iw.mean()
    if name == "dm":
        return dm
    if name == "dr":
        return dm + np.minimum(iw, lam) * (reward - q_fact)
    if name == "sndr":
        return dm + iw * (reward - q_fact) / iw.mean()
    if name == "switch-dr":
        return dm + np.array(iw <= lam, dtype=int) * iw * (reward - q_fact)
    if name == "dr-os":
        iw_hat = (lam * iw) / (iw**2 + lam) if lam < np.inf else iw
        return dm + iw_hat * (reward - q_fact)
    if name == "sg-ipw":
        return iw / (1 - lam + lam * iw) * reward
    if name == "sg-dr":
        return dm + iw / (1 - lam + lam * iw) * (reward - q_fact)
    raise KeyError(name)


def random_logged(rng, n, K, L=1, zero_target_mass=False):
    pi_b = rng.dirichlet(np.ones(K), size=(n, L)).transpose(0, 2, 1)  # (n, K, L)
    pi_e = rng.dirichlet(np.full(K, 0.5), size=(n, L)).transpose(0, 2, 1)
    position = rng.integers(0, L, n)
    cum = pi_b[np.arange(n), :, position].cumsum(axis=1)
    action = (cum > rng.random((n, 1))).argmax(axis=1)
    pscore = pi_b[np.arange(n), action, position]
    qhat = rng.random((n, K, L))
    reward = rng.binomial(1, 0.4, n).astype(float)
    return dict(reward=reward, action=action, pscore=pscore, action_dist=pi_e,
                estimated_rewards_by_reg_model=qhat, position=position), pi_b  # fmt: skip


OBP_CASES = [
    (IPS(), "ipw", np.inf),
    (IPS(lambda_=2.0, estimator_name="ipw2"), "ipw", 2.0),
    (SNIPS(), "snipw", None),
    (DM(), "dm", None),
    (DR(), "dr", np.inf),
    (DR(lambda_=3.0, estimator_name="dr3"), "dr", 3.0),
    (SNDR(), "sndr", None),
    (SwitchDR(lambda_=1.5), "switch-dr", 1.5),
    (DRos(lambda_=4.0), "dr-os", 4.0),
    (DRos(lambda_=np.inf, estimator_name="dros-inf"), "dr-os", np.inf),
    (SubGaussianIPS(lambda_=0.3), "sg-ipw", 0.3),
    (SGDR(lambda_=0.3), "sg-dr", 0.3),
]


@pytest.mark.parametrize("L", [1, 3])
def test_matches_obp_formulas_with_positions(L):
    rng = np.random.default_rng(7)
    arrays, _ = random_logged(rng, 2000, 6, L)
    for est, name, lam in OBP_CASES:
        ref = obp_round_rewards(name, lam, arrays["reward"], arrays["action"], arrays["pscore"],
                                arrays["action_dist"], arrays["estimated_rewards_by_reg_model"],
                                arrays["position"])  # fmt: skip
        ours = est.estimate_round_rewards(**arrays)
        np.testing.assert_allclose(ours, ref, rtol=1e-12, atol=1e-12)
        assert est.estimate_policy_value(**arrays) == pytest.approx(ref.mean(), rel=1e-12, abs=1e-14)


def test_obp_default_position_and_2d_action_dist():
    rng = np.random.default_rng(8)
    arrays, _ = random_logged(rng, 500, 4, 1)
    two_d = dict(arrays, position=None, action_dist=arrays["action_dist"][:, :, 0],
                 estimated_rewards_by_reg_model=arrays["estimated_rewards_by_reg_model"][:, :, 0])  # fmt: skip
    for est, _, _ in OBP_CASES:
        assert est.estimate_policy_value(**two_d) == est.estimate_policy_value(**arrays)


def test_mips_weights_by_the_joint_embedding_hand_example():
    # K = 2 actions, two embedding dimensions with two categories each:
    #   p(e1 | a0) = [1, 0],    p(e1 | a1) = [.5, .5]
    #   p(e2 | a0) = [.5, .5],  p(e2 | a1) = [0, 1]
    p_e_a = np.array([[[1.0, 0.5], [0.0, 0.5]], [[0.5, 0.0], [0.5, 1.0]]])  # (K, n_cat, n_dim)
    # row 0: a=1, e=(0, 1): p(e|a0) = 1*.5 = .5, p(e|a1) = .5*1 = .5
    #        pi_b = [.5, .5] -> p(e|pi_b) = .5;  pi_e = [1, 0] -> p(e|pi_e) = .5;  w = 1
    # row 1: a=0, e=(0, 0): p(e|a0) = .5, p(e|a1) = .5*0 = 0
    #        pi_b = [.25, .75] -> .125;          pi_e = [.5, .5] -> .25;           w = 2
    # (multiplying per-dimension marginals instead would give w = [8/9, 2.4])
    arrays = dict(reward=np.array([1.0, 0.5]), action=np.array([1, 0]), action_embed=np.array([[0, 1], [0, 0]]),
                  pi_b=np.array([[0.5, 0.5], [0.25, 0.75]]), action_dist=np.array([[1.0, 0.0], [0.5, 0.5]]),
                  p_e_a=p_e_a)  # fmt: skip
    np.testing.assert_allclose(MIPS(n_actions=2).estimate_round_rewards(**arrays), [1.0, 1.0], rtol=1e-15)
    assert MIPS(n_actions=2).estimate_policy_value(**arrays) == pytest.approx(1.0, rel=1e-15)
    assert SNMIPS(n_actions=2).estimate_policy_value(**arrays) == pytest.approx(2 / 3, rel=1e-15)


def test_mips_multi_dimension_matches_obp_numbers():
    # OBP 0.5.7 MarginalizedInverseProbabilityWeighting(n_actions=8).estimate_policy_value on
    # these arrays (run in a scratch venv with obp==0.5.7 on PYTHONPATH): 0.5223067251439054;
    # its SNMIPW on the first embedding column: 0.5067466301042998.
    rng = np.random.default_rng(9)
    n, K, C, D = 2000, 8, 3, 3
    pi_b = rng.dirichlet(np.ones(K), size=n)[:, :, None]
    pi_e = rng.dirichlet(np.ones(K), size=n)[:, :, None]
    action = (pi_b[:, :, 0].cumsum(1) > rng.random((n, 1))).argmax(1)
    reward = rng.random(n)
    p_e_a = rng.dirichlet(np.ones(C), size=(K, D)).transpose(0, 2, 1)
    E = np.stack([(p_e_a[action, :, d].cumsum(1) > rng.random((n, 1))).argmax(1) for d in range(D)], axis=1)
    kw = dict(reward=reward, action=action, action_dist=pi_e, pi_b=pi_b, action_embed=E, p_e_a=p_e_a,
              position=np.zeros(n, int))  # fmt: skip
    assert MIPS(n_actions=K).estimate_policy_value(**kw) == pytest.approx(0.5223067251439054, rel=1e-13)
    one = dict(kw, action_embed=E[:, :1], p_e_a=p_e_a[:, :, :1])
    assert SNMIPS(n_actions=K).estimate_policy_value(**one) == pytest.approx(0.5067466301042998, rel=1e-13)


# --------------------------------------------------------------------------- dense == light
def test_dense_and_light_paths_agree():
    rng = np.random.default_rng(10)
    arrays, _ = random_logged(rng, 3000, 7, 2)
    n = 3000
    A, Q, a, pos = arrays["action_dist"], arrays["estimated_rewards_by_reg_model"], arrays["action"], arrays["position"]
    light = dict(
        reward=arrays["reward"],
        pscore=arrays["pscore"],
        target_pscore=A[np.arange(n), a, pos],
        target_q=(A[np.arange(n), :, pos] * Q[np.arange(n), :, pos]).sum(axis=1),
        q_at_action=Q[np.arange(n), a, pos],
    )
    ests = [e for e, _, _ in OBP_CASES]
    dense = estimate_all(ests, **arrays)
    light_vals = estimate_all(ests, **light)
    assert estimate_all_light(ests, **light) == light_vals
    for est in ests:
        assert light_vals[est.estimator_name] == pytest.approx(dense[est.estimator_name], rel=1e-12, abs=1e-12)
        assert est.estimate_policy_value_light(**light) == pytest.approx(dense[est.estimator_name], rel=1e-12, abs=1e-12)
        assert est.estimate_policy_value(**arrays) == dense[est.estimator_name]


def test_reduce_dense_threads_and_chunks_do_not_change_numbers():
    rng = np.random.default_rng(11)
    arrays, pi_b = random_logged(rng, 5000, 5, 1)
    one = reduce_dense(**arrays, pi_b=pi_b, threads=1)
    two = reduce_dense(**arrays, pi_b=pi_b, threads=2)
    for name in ("target_pscore", "target_q", "q_at_action", "unsupported_mass"):
        np.testing.assert_array_equal(getattr(one, name), getattr(two, name))


# --------------------------------------------------------------------------- validation
def test_nan_and_inf_are_named_with_counts():
    arrays = _hand_arrays()
    bad = REWARD.copy()
    bad[[0, 2]] = np.nan
    with pytest.raises(ValueError, match=r"^reward contains NaN \(2 of 4 rows\)$"):
        DR().estimate_policy_value(**dict(arrays, reward=bad))
    q = QHAT.copy()[:, :, None]
    q[1, 2, 0] = np.inf
    with pytest.raises(ValueError, match=r"estimated_rewards_by_reg_model contains inf \(1 of 4 rows\)"):
        DR().estimate_policy_value(**dict(arrays, estimated_rewards_by_reg_model=q))
    pi = PI_E.copy()
    pi[3, 1] = np.nan
    with pytest.raises(ValueError, match=r"action_dist contains NaN \(1 of 4 rows\)"):
        IPS().estimate_policy_value(**dict(arrays, action_dist=pi))
    with pytest.raises(ValueError, match=r"pscore contains inf"):
        IPS().estimate_policy_value_light(reward=REWARD, pscore=np.array([0.5, np.inf, 1, 1]), target_pscore=PSCORE)


def test_shape_and_value_errors_name_the_arrays():
    arrays = _hand_arrays()
    with pytest.raises(ValueError, match=r"^pscore has 3 rows but action_dist has 4$"):
        IPS().estimate_policy_value(**dict(arrays, pscore=PSCORE[:3]))
    with pytest.raises(ValueError, match=r"^pscore has 3 rows but reward has 4$"):
        IPS().estimate_policy_value_light(reward=REWARD, pscore=PSCORE[:3], target_pscore=PSCORE)
    with pytest.raises(ValueError, match=r"pscore must be positive; 1 of 4 rows are <= 0"):
        IPS().estimate_policy_value(**dict(arrays, pscore=np.array([0.5, 0.0, 0.25, 0.5])))
    with pytest.raises(ValueError, match=r"action: values must be in \[0, 3\)"):
        IPS().estimate_policy_value(**dict(arrays, action=np.array([0, 1, 3, 1])))
    with pytest.raises(ValueError, match=r"action: expected integers"):
        IPS().estimate_policy_value(**dict(arrays, action=ACTION.astype(float)))
    with pytest.raises(ValueError, match=r"action_dist: each row must sum to 1 over actions; 1 of 4"):
        IPS().estimate_policy_value(**dict(arrays, action_dist=PI_E * np.array([[1], [1], [0.9], [1]])))
    with pytest.raises(ValueError, match=r"estimated_rewards_by_reg_model has shape \(4, 2, 1\) but action_dist has \(4, 3, 1\)"):
        DR().estimate_policy_value(**dict(arrays, estimated_rewards_by_reg_model=QHAT[:, :2]))
    three = dict(arrays, action_dist=np.repeat(PI_E[:, :, None], 2, axis=2), estimated_rewards_by_reg_model=None)
    with pytest.raises(ValueError, match=r"position is required when action_dist has len_list=2"):
        IPS().estimate_policy_value(**three)
    with pytest.raises(ValueError, match=r"position: values must be in \[0, 2\)"):
        IPS().estimate_policy_value(**three, position=np.array([0, 1, 2, 0]))
    with pytest.raises(ValueError, match=r"DoublyRobust needs target_q, q_at_action \(dense API: pass .*estimated_rewards_by_reg_model"):
        DR().estimate_policy_value(**dict(arrays, estimated_rewards_by_reg_model=None))
    with pytest.raises(TypeError, match=r"unexpected keyword \['psocre'\]"):
        IPS().estimate_policy_value(**dict(arrays, psocre=PSCORE))
    with pytest.raises(TypeError, match="either dense arrays"):
        IPS().estimate_policy_value(**dict(arrays, target_pscore=PSCORE))
    # OBP's extra bandit_feedback keys are accepted and ignored
    IPS().estimate_policy_value(**dict(arrays, context=np.zeros((4, 2)), n_rounds=4))


def test_hyperparameters_are_validated():
    with pytest.raises(ValueError, match=r"InverseProbabilityWeighting.lambda_: must be in \[0, inf\], got -1"):
        IPS(lambda_=-1)
    with pytest.raises(ValueError, match="must not be NaN"):
        DR(lambda_=float("nan"))
    with pytest.raises(ValueError, match=r"SubGaussianInverseProbabilityWeighting.lambda_: must be in \[0, 1.0\]"):
        SubGaussianIPS(lambda_=1.5)
    with pytest.raises(ValueError, match="use_estimated_pscore: expected a bool"):
        IPS(use_estimated_pscore=1)
    with pytest.raises(ValueError, match="estimator_name"):
        DM(estimator_name="")
    with pytest.raises(TypeError):
        SNIPS(lambda_=3.0)  # OBP silently ignores it; we refuse
    with pytest.raises(ValueError, match="duplicate estimator_name"):
        estimate_all([IPS(), IPS(lambda_=5)], **_hand_arrays())
    # OBP's positional order
    assert IPS(10).lambda_ == 10 and DRos(2.0).lambda_ == 2.0 and MIPS(5).n_actions == 5


def test_estimated_pscore_is_used_when_asked():
    arrays = dict(_hand_arrays(), estimated_pscore=np.array([1.0, 0.5, 0.5, 1.0]))
    # w = [0.5, 1, 1, 0]; IPW = mean([0.5, 0, 1, 0]) = 0.375
    assert IPS(use_estimated_pscore=True).estimate_policy_value(**arrays) == pytest.approx(0.375)
    assert IPS().estimate_policy_value(**arrays) == pytest.approx(0.75)
    with pytest.raises(ValueError, match="needs estimated_pscore"):
        IPS(use_estimated_pscore=True).estimate_policy_value(**_hand_arrays())


def test_shrinkage_limits_do_not_produce_nan():
    # OBP divides 0/0 here (w = 0 with lambda_ = 0 or SG lambda_ = 1); the intended limit is 0
    arrays = _hand_arrays()
    assert DRos(lambda_=0.0).estimate_policy_value(**arrays) == pytest.approx(HAND["dm"])
    # SG-IPW lambda=1: w_hat = w / w = 1 where w > 0 and 0 where w = 0 -> mean([1, 0, 1, 0])
    assert SubGaussianIPS(lambda_=1.0).estimate_policy_value(**arrays) == pytest.approx(0.5)


def test_support_violation_warns_with_the_share():
    arrays = _hand_arrays()
    pi_b = np.array([[0.5, 0.25, 0.25], [0.5, 0.5, 0.0], [0.5, 0.25, 0.25], [0.25, 0.5, 0.25]])
    # target mass where pi_b = 0: row 1 puts 0.5 on action 2 -> share = 0.5 / 4 = 12.5%
    with pytest.warns(SupportViolationWarning, match=r"support violation: target puts 12\.5% of its mass where the logger's pscore is 0 \(1 of 4 rounds\)"):
        IPS().estimate_policy_value(**arrays, pi_b=pi_b)
    with warnings.catch_warnings():
        warnings.simplefilter("error", SupportViolationWarning)
        IPS().estimate_policy_value(**arrays, pi_b=PI_B)  # full support: silent
        with pytest.raises(SupportViolationWarning):
            IPS().estimate_policy_value(**arrays, pi_b=pi_b)


# --------------------------------------------------------------------------- statistics
class SmallWorld:
    """Contexts x in R^3, K actions, q(x,a) = sigmoid(x.theta_a); softmax logger and target."""

    def __init__(self, K=5, d=3, seed=0):
        rng = np.random.default_rng(seed)
        self.K, self.d = K, d
        self.theta = rng.normal(size=(K, d))
        self.phi_b = rng.normal(size=(K, d))
        self.phi_e = self.theta + 0.5 * rng.normal(size=(K, d))

    @staticmethod
    def softmax(z):
        z = z - z.max(axis=1, keepdims=True)
        e = np.exp(z)
        return e / e.sum(axis=1, keepdims=True)

    def sample(self, n, rng):
        x = rng.normal(size=(n, self.d))
        q = 1 / (1 + np.exp(-(x @ self.theta.T)))
        pi_b = 0.7 * self.softmax(x @ self.phi_b.T) + 0.3 / self.K
        pi_e = self.softmax(2.0 * x @ self.phi_e.T)
        a = (pi_b.cumsum(axis=1) > rng.random((n, 1))).argmax(axis=1)
        r = rng.binomial(1, q[np.arange(n), a]).astype(float)
        return dict(x=x, q=q, pi_b=pi_b, pi_e=pi_e, action=a, reward=r, pscore=pi_b[np.arange(n), a])


def _errors(world, estimators, n, reps, seed, qhat_fn):
    rng = np.random.default_rng(seed)
    out = {e.estimator_name: [] for e in estimators}
    for _ in range(reps):
        s = world.sample(n, rng)
        truth = policy_value(s["pi_e"], s["q"])  # V(pi_e) on these contexts: the conditional estimand
        vals = estimate_all(estimators, reward=s["reward"], action=s["action"], pscore=s["pscore"],
                            action_dist=s["pi_e"], estimated_rewards_by_reg_model=qhat_fn(s, rng))  # fmt: skip
        for k, v in vals.items():
            out[k].append(v - truth)
    return {k: np.array(v) for k, v in out.items()}


def test_ips_and_dr_are_unbiased_and_dr_with_true_q_has_smaller_variance():
    world = SmallWorld()
    noisy = lambda s, rng: np.clip(s["q"] + 0.2 * rng.normal(size=s["q"].shape), 0, 1)  # noqa: E731
    errs = _errors(world, [IPS(), DR()], n=400, reps=200, seed=1, qhat_fn=noisy)
    for name, e in errs.items():
        se = e.std(ddof=1) / np.sqrt(e.size)
        assert abs(e.mean()) < 3 * se, (name, e.mean(), se)
    exact = _errors(world, [IPS(), DR(), DM()], n=400, reps=200, seed=2, qhat_fn=lambda s, rng: s["q"])
    dr = exact["dr"]
    assert abs(dr.mean()) < 3 * dr.std(ddof=1) / np.sqrt(dr.size)
    assert dr.var() <= exact["ipw"].var()
    np.testing.assert_allclose(exact["dm"], 0.0, atol=1e-12)  # DM with q = truth is the truth


def test_snips_is_consistent():
    world = SmallWorld(seed=3)
    rmse = []
    for n in (100, 3200):
        e = _errors(world, [SNIPS()], n=n, reps=60, seed=4, qhat_fn=lambda s, rng: s["q"])["snipw"]
        rmse.append(np.sqrt(np.mean(e**2)))
    assert rmse[1] < rmse[0] / 3  # ~ 1/sqrt(32) = 0.18 expected


def test_light_inputs_reject_bad_vectors():
    with pytest.raises(ValueError, match="target_pscore must be >= 0"):
        LightInputs(reward=REWARD, pscore=PSCORE, target_pscore=np.array([0.5, -0.1, 0.5, 0.5]))
    with pytest.raises(ValueError, match=r"target_q: expected shape \(n_rounds,\)"):
        LightInputs(target_q=np.zeros((4, 2)))
    with pytest.raises(TypeError, match="unexpected arrays"):
        IPS().estimate_policy_value_light(reward=REWARD, pscore=PSCORE, target_pscor=PSCORE)


def test_bench_functions_run_and_agree_with_obp_style():
    from recsim_causal.ope.bench import bench_bootstrap, bench_dense, bench_light

    dense = bench_dense(n=3000, K=10, repeats=1)
    assert dense["max_abs_diff_vs_obp_style"] < 1e-12 and dense["seconds"] > 0
    assert bench_light(n=10_000, repeats=1)["peak_bytes"] > 0
    assert bench_bootstrap(n=40_000, B=4, which="all8")["seconds"] > 0
