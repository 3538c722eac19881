"""lambda_="auto": SLOPE's choice on hand examples (OBP 0.5.7 agreement: scripts/crosscheck_obp_slope.py)."""

import math

import numpy as np
import pytest
from scipy import stats

from recsim_causal.ope import DR, IPS, DRos, SubGaussianIPS, SwitchDR, slope, tuned_lambdas
from recsim_causal.ope.diagnostics import interval_validity

N = 401
T90 = stats.t(N - 1).ppf(0.9)


def candidate(theta: float, width: float, seed: int) -> np.ndarray:
    """N per-round values with mean theta and SLOPE width t_{N-1}(0.9) sqrt(var / (N - 1)) = width."""
    z = np.random.default_rng(seed).normal(size=N)
    z = (z - z.mean()) / z.std()
    return theta + z * width * math.sqrt(N - 1) / T90


def test_slope_stops_before_the_first_candidate_that_leaves_the_others_intervals():
    # widths 1.0, 0.5, 0.1 (visited in that order): 0.3 is within 0.5 + C * 1.0 of 0.0,
    # 2.0 is not within 0.1 + C * 1.0 (C = sqrt(6) - 1): the middle one is chosen
    rr = [candidate(0.0, 1.0, 0), candidate(0.3, 0.5, 1), candidate(2.0, 0.1, 2)]
    assert slope(rr) == 1
    # the same candidates in another order: the choice follows the widths, not the positions
    assert slope([rr[2], rr[0], rr[1]]) == 2


def test_slope_takes_the_narrowest_when_all_agree_and_the_widest_when_none_do():
    assert slope([candidate(0.0, 1.0, 0), candidate(0.1, 0.5, 1), candidate(0.2, 0.1, 2)]) == 2
    assert slope([candidate(0.0, 0.1, 0), candidate(5.0, 0.05, 1)]) == 0


def heavy_log(seed: int, n: int = 4000, K: int = 20):
    """A logger that rarely takes the target's favourite action: a few huge weights."""
    rng = np.random.default_rng(seed)
    pb = np.full((n, K), 0.98 / (K - 1))
    pb[:, 0] = 0.02
    pe = np.full((n, K), 0.1 / (K - 1))
    pe[:, 0] = 0.9
    a = (pb.cumsum(axis=1) < rng.random((n, 1))).sum(axis=1)
    q = np.tile(np.linspace(0.9, 0.1, K), (n, 1))
    r = (rng.random(n) < q[np.arange(n), a]).astype(float)
    return dict(reward=r, action=a, pscore=pb[np.arange(n), a], action_dist=pe,
                estimated_rewards_by_reg_model=np.full((n, K, 1), 0.5)), float((pe * q).sum(axis=1).mean())


@pytest.mark.parametrize("cls", [IPS, DR, SwitchDR, DRos, SubGaussianIPS])
def test_auto_uses_the_chosen_lambda_and_reports_it(cls):
    arrays, _ = heavy_log(0)
    est = cls(lambda_="auto")
    lam = tuned_lambdas([est], **arrays)[est.estimator_name]
    assert lam in est.candidates()
    assert est.estimate_policy_value(**arrays) == cls(lambda_=lam).estimate_policy_value(**arrays)
    valid, reason = interval_validity(est, "bootstrap", {"n_rounds": 4000, "ess": 4000.0, "ess_ratio": 1.0})
    assert not valid and "SLOPE" in reason


def test_auto_with_no_spread_in_the_weights_is_the_plain_estimator():
    n, K = 2000, 5
    rng = np.random.default_rng(3)
    pi = np.full((n, K), 1 / K)
    a = rng.integers(K, size=n)
    r = rng.random(n)
    arrays = dict(reward=r, action=a, pscore=pi[np.arange(n), a], action_dist=pi)
    assert IPS(lambda_="auto").estimate_policy_value(**arrays) == pytest.approx(r.mean(), abs=1e-12)


def test_effective_max_weight_covers_every_candidate():
    assert IPS(lambda_="auto").effective_max_weight(50.0) == 50.0
    assert SubGaussianIPS(lambda_="auto").effective_max_weight(0.5) == pytest.approx(1.0)  # lambda 1: w / w


def test_bad_lambda_settings_are_one_line():
    with pytest.raises(ValueError, match=r"IPS|InverseProbabilityWeighting.lambda_: expected a number or 'auto', got 'atuo'"):
        IPS(lambda_="atuo")
    with pytest.raises(ValueError, match="lambdas: expected a non-empty list"):
        SwitchDR(lambda_="auto", lambdas=[])
    with pytest.raises(ValueError, match=r"lambda_: must be in \[0, 1.0\], got 2.0"):
        SubGaussianIPS(lambda_="auto", lambdas=[0.1, 2.0])
    with pytest.raises(ValueError, match=r"delta: expected a number in \(0, 1\)"):
        DRos(lambda_="auto", delta=1.5)
