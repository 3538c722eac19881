"""Reward models: the Gram-matrix tricks against explicit design matrices, sklearn's KFold
folds, cross-fitting, positions, sample weights, and that the MLP learns."""

from __future__ import annotations

import numpy as np
import pytest

from recsim_causal.ope import RegressionModel, fit_predict
from recsim_causal.ope.reward_models import kfold_indices


def _data(n=600, K=4, d=3, seed=0, binary=True):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, d))
    theta = rng.normal(size=(K, d))
    q = 1 / (1 + np.exp(-(x @ theta.T)))
    a = rng.integers(0, K, n)
    y = rng.binomial(1, q[np.arange(n), a]).astype(float) if binary else q[np.arange(n), a] + rng.normal(0, 0.1, n)
    return x, a, y, q


def _design(x, a, ac):
    return np.c_[x, ac[a], np.ones(x.shape[0])]


def test_kfold_matches_sklearn_shuffled_kfold():
    # sklearn's KFold(3, shuffle=True, random_state=0) on 10 rows: test folds are consecutive
    # chunks (sizes 4, 3, 3) of RandomState(0).permutation(10), sorted; train indices are sorted
    perm = np.random.RandomState(0).permutation(10)
    folds = list(kfold_indices(10, 3, 0))
    assert [t.tolist() for _, t in folds] == [sorted(perm[:4]), sorted(perm[4:7]), sorted(perm[7:])]
    from sklearn.model_selection import KFold

    for (train, test), (ref_train, ref_test) in zip(folds, KFold(3, shuffle=True, random_state=0).split(np.zeros((10, 1)))):
        np.testing.assert_array_equal(train, ref_train)
        np.testing.assert_array_equal(test, ref_test)
        assert train.tolist() == sorted(set(range(10)) - set(test.tolist()))
    with pytest.raises(ValueError, match="n_folds"):
        list(kfold_indices(5, 1, 0))


@pytest.mark.parametrize("weighted", [False, True])
def test_ridge_concat_equals_explicit_normal_equations(weighted):
    x, a, y, _ = _data(binary=False)
    K = 4
    ac = np.random.default_rng(1).normal(size=(K, 2))
    w = np.random.default_rng(2).uniform(0.5, 2.0, x.shape[0]) if weighted else np.ones(x.shape[0])
    m = RegressionModel("ridge", K, action_context=ac, alpha=0.7)
    learner = m._new_learner().fit(x, a, y, w)
    X = _design(x, a, ac)
    P = np.diag([0.7] * (X.shape[1] - 1) + [0.0])
    beta = np.linalg.solve(X.T @ (X * w[:, None]) + P, X.T @ (w * y))
    np.testing.assert_allclose(learner.beta, beta, rtol=1e-9, atol=1e-12)
    pred = learner.predict_all(x)
    for k in range(K):
        np.testing.assert_allclose(pred[:, k], _design(x, np.full(x.shape[0], k), ac) @ beta, rtol=1e-9)


def test_logistic_concat_solves_the_penalized_likelihood():
    x, a, y, _ = _data()
    K = 4
    ac = np.eye(K)  # OBP's default action features: one-hot
    m = RegressionModel("logistic", K, alpha=1.0)
    learner = m._new_learner().fit(x, a, y, np.ones(x.shape[0]))
    beta = np.r_[learner.fitted.coef_[0], learner.fitted.intercept_]
    X = _design(x, a, ac)
    mu = 1 / (1 + np.exp(-X @ beta))
    penalty = np.r_[np.ones(X.shape[1] - 1), 0.0]
    grad = X.T @ (mu - y) + penalty * beta  # KKT of the penalized likelihood (C = 1)
    assert np.max(np.abs(grad)) < 1e-4
    np.testing.assert_allclose(learner.predict_all(x)[np.arange(len(a)), a], mu, rtol=1e-10)


def test_scikit_learn_base_models_follow_obp_regression_model_contract():
    from sklearn.base import clone
    from sklearn.ensemble import RandomForestClassifier
    from sklearn.linear_model import Ridge

    x, a, y, _ = _data(n=800)
    K = 4
    # a regressor on OBP's concat features equals our exact ridge on the same features
    ours = fit_predict(x, a, y, K, base_model="ridge", alpha=0.7, n_folds=2, random_state=0)
    theirs = fit_predict(x, a, y, K, base_model=Ridge(alpha=0.7), n_folds=2, random_state=0)
    np.testing.assert_allclose(theirs, ours, rtol=1e-8, atol=1e-10)
    # a classifier: cross-fitted predict_proba[:, 1] of a clone fitted on the other fold
    forest = RandomForestClassifier(n_estimators=20, max_depth=4, random_state=0)
    out = fit_predict(x, a, y, K, base_model=forest, n_folds=2, random_state=0)
    train, test = next(kfold_indices(x.shape[0], 2, 0))
    ref = clone(forest).fit(np.c_[x[train], np.eye(K)[a[train]]], y[train])
    for k in range(K):
        np.testing.assert_allclose(out[test, k, 0], ref.predict_proba(np.c_[x[test], np.tile(np.eye(K)[k], (len(test), 1))])[:, 1])
    with pytest.raises(ValueError, match=r"^RegressionModel.features: a scikit-learn base_model uses OBP's 'concat'"):
        RegressionModel(Ridge(), K, features="interaction")
    with pytest.raises(ValueError, match=r"^RegressionModel.base_model: expected one of \('ridge', 'logistic', 'mlp'"):
        RegressionModel("forest", K)


def test_interaction_models_are_per_action_fits():
    x, a, y, _ = _data(binary=False)
    K = 4
    m = RegressionModel("ridge", K, features="interaction", alpha=0.5)
    learner = m._new_learner().fit(x, a, y, np.ones(x.shape[0]))
    b0 = y.mean()
    for k in range(K):
        rows = a == k
        X = np.c_[x[rows], np.ones(rows.sum())]
        beta = np.linalg.solve(X.T @ X + 0.5 * np.eye(X.shape[1]), X.T @ (y[rows] - b0))
        np.testing.assert_allclose(learner.coef[k], beta, rtol=1e-9)
    # an action never logged falls back to the global level
    a2 = np.where(a == 3, 0, a)
    pred = m._new_learner().fit(x, a2, y, np.ones(x.shape[0])).predict_all(x[:5])
    np.testing.assert_allclose(pred[:, 3], y.mean())


def test_cross_fitting_uses_out_of_fold_models():
    x, a, y, _ = _data()
    out = fit_predict(x, a, y, 4, base_model="logistic", n_folds=2, random_state=0)
    assert out.shape == (x.shape[0], 4, 1)
    train, test = next(kfold_indices(x.shape[0], 2, 0))
    m = RegressionModel("logistic", 4).fit(x[train], a[train], y[train])
    np.testing.assert_allclose(out[test], m.predict(x[test]), rtol=1e-12)
    assert not np.allclose(out, RegressionModel("logistic", 4).fit(x, a, y).predict(x))


def test_positions_and_weights():
    x, a, y, _ = _data(n=900)
    rng = np.random.default_rng(3)
    pos = rng.integers(0, 3, x.shape[0])
    out = fit_predict(x, a, y, 4, base_model="ridge", position=pos, n_folds=1)
    assert out.shape == (900, 4, 3)
    m0 = RegressionModel("ridge", 4).fit(x[pos == 0], a[pos == 0], y[pos == 0])
    np.testing.assert_allclose(out[:, :, 0], m0.predict(x)[:, :, 0], rtol=1e-12)
    # iw fitting: sample weight pi_e(a_i|x_i) / pscore
    pi_e = rng.dirichlet(np.ones(4), size=(900, 3)).transpose(0, 2, 1)
    ps = np.full(900, 0.25)
    mi = RegressionModel("ridge", 4, len_list=3, fitting_method="iw")
    mi.fit(x, a, y, pscore=ps, position=pos, action_dist=pi_e)
    rows = pos == 1
    w = pi_e[np.arange(900), a, pos][rows] / 0.25
    X = _design(x[rows], a[rows], np.eye(4))
    P = np.diag([1.0] * (X.shape[1] - 1) + [0.0])
    beta = np.linalg.solve(X.T @ (X * w[:, None]) + P, X.T @ (w * y[rows]))
    np.testing.assert_allclose(mi.models_[1].beta, beta, rtol=1e-9)
    with pytest.raises(ValueError, match="needs action_dist"):
        RegressionModel("ridge", 4, fitting_method="mrdr").fit(x, a, y)


def test_learners_recover_the_reward_function():
    x, a, y, q = _data(n=4000, seed=5)
    base = np.sqrt(np.mean((y.mean() - q) ** 2))
    for bm, feat in [("logistic", "interaction"), ("mlp", "interaction")]:
        qh = fit_predict(x, a, y, 4, base_model=bm, features=feat, n_folds=2, random_state=0, n_epochs=15)
        rmse = np.sqrt(np.mean((qh[:, :, 0] - q) ** 2))
        assert rmse < 0.5 * base, (bm, feat, rmse, base)


def test_validation():
    x, a, y, _ = _data()
    with pytest.raises(ValueError, match=r"RegressionModel.base_model: expected one of"):
        RegressionModel("gbm", 4)
    with pytest.raises(ValueError, match=r"rewards must lie in \[0, 1\]"):
        RegressionModel("logistic", 4).fit(x, a, y * 2 - 0.5)
    with pytest.raises(ValueError, match=r"reward has 10 rows but context has 600"):
        RegressionModel("ridge", 4).fit(x, a, y[:10])
    with pytest.raises(ValueError, match=r"action: values must be in \[0, 3\)"):
        RegressionModel("ridge", 3).fit(x, a, y)


def test_grouped_folds_keep_a_resampled_round_on_one_side():
    """A bootstrap resample's duplicated rounds (same original index) never straddle a cross-fit:
    the folds split the distinct indices as KFold splits rows."""
    idx = np.random.default_rng(0).integers(0, 50, 200)
    folds = list(kfold_indices(200, 3, 0, groups=idx))
    seen = np.concatenate([test for _, test in folds])
    assert sorted(seen.tolist()) == list(range(200))
    for train, test in folds:
        assert not set(idx[train]) & set(idx[test])
    labels = np.unique(idx)  # the distinct labels are split exactly as KFold splits len(labels) rows
    for (train, test), (_, ref_test) in zip(folds, kfold_indices(len(labels), 3, 0)):
        assert set(idx[test]) == set(labels[ref_test])


# ---------------------------------------------------------------- "cross": shared through item features
def _cross_data(n=3000, K=40, d=4, m=3, seed=0):
    """Clicks whose logit is bilinear in (x, item features): most items logged a few times."""
    rng = np.random.default_rng(seed)
    x, ac = rng.normal(size=(n, d)), rng.normal(size=(K, m))
    M = rng.normal(size=(d, m)) * 0.6
    q = 1 / (1 + np.exp(-(-0.5 + x @ M @ ac.T + 0.4 * ac[:, 0])))
    p = np.full(K, 0.2 / (K - 2))
    p[:2] = 0.4  # two items take 80% of the log
    a = rng.choice(K, size=n, p=p)
    y = rng.binomial(1, q[np.arange(n), a]).astype(float)
    return x, a, y, q, ac


def _cross_design(x, a, ac):
    """The explicit design [x, phi_a, x (x) phi_a, onehot(a)] on standardized x and phi."""
    xs = (x - x.mean(0)) / x.std(0)
    phi = (ac - ac.mean(0)) / ac.std(0)
    ph = phi[a]
    return np.c_[xs, ph, (xs[:, :, None] * ph[:, None, :]).reshape(len(x), -1), np.eye(len(ac))[a]]


@pytest.mark.parametrize("base", ["logistic", "ridge"])
def test_cross_features_equal_sklearn_on_the_explicit_design(base):
    from sklearn.linear_model import LogisticRegression, Ridge

    x, a, y, _, ac = _cross_data(n=800, K=10)
    model = RegressionModel(base, 10, action_context=ac, features="cross", alpha=2.0, offset_alpha=2.0).fit(x, a, y)
    Z = _cross_design(x, a, ac)
    ref = (LogisticRegression(C=0.5, tol=1e-12, max_iter=10000) if base == "logistic" else Ridge(alpha=2.0)).fit(Z, y)
    Zall = [_cross_design(x, np.full(len(x), k), ac) for k in range(10)]
    want = np.stack([ref.predict_proba(Zk)[:, 1] if base == "logistic" else ref.predict(Zk) for Zk in Zall], axis=1)
    np.testing.assert_allclose(model.predict(x)[:, :, 0], want, atol=1e-5)


def test_cross_features_learn_rarely_logged_items_from_their_features():
    x, a, y, q, ac = _cross_data()
    rare = np.arange(2, 40)  # ~16 rows each
    cross = fit_predict(x, a, y, 40, action_context=ac, features="cross", n_folds=2)[:, :, 0]
    per_action = fit_predict(x, a, y, 40, features="interaction", n_folds=2)[:, :, 0]
    err_cross = np.sqrt(np.mean((cross[:, rare] - q[:, rare]) ** 2))
    err_per_action = np.sqrt(np.mean((per_action[:, rare] - q[:, rare]) ** 2))
    assert err_cross < err_per_action / 2  # the features carry what 16 rows cannot


def test_cross_offset_alpha_is_validated():
    with pytest.raises(ValueError, match="RegressionModel.offset_alpha: expected a finite number >= 0, got -1"):
        RegressionModel("logistic", 3, features="cross", offset_alpha=-1)
