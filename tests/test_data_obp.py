"""OBP interop: the bandit_feedback dict both ways, and the Open Bandit Dataset loader on a
tiny OBD-layout folder written by the test."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from recsim_causal.data import from_obp, load_obd, to_obp

from .test_data_feedback import assert_same, make_feedback


def test_obp_dict_round_trip():
    fb = make_feedback(n=300)
    bf = to_obp(fb)
    assert {"n_rounds", "n_actions", "context", "action_context", "action", "position", "reward",
            "pscore", "expected_reward", "pi_b"} <= set(bf)  # fmt: skip
    assert bf["pi_b"].shape == (300, 5, 1) and bf["n_rounds"] == 300
    assert bf["action"] is fb.action  # shared, not copied
    assert_same(fb, from_obp(bf))
    fb3 = make_feedback(n=300, L=3)
    assert_same(fb3, from_obp(to_obp(fb3)))


def test_from_obp_synthetic_style_dict():
    # the shape of obp.dataset.SyntheticBanditDataset.obtain_batch_bandit_feedback()
    rng = np.random.default_rng(0)
    n, K = 100, 4
    pi_b = rng.dirichlet(np.ones(K), size=n)
    action = (pi_b.cumsum(axis=1) > rng.random((n, 1))).argmax(axis=1)
    bf = dict(
        n_rounds=n, n_actions=K, context=rng.normal(size=(n, 3)), action_context=np.eye(K),
        action=action, position=None, reward=rng.binomial(1, 0.5, n), expected_reward=rng.random((n, K)),
        pi_b=pi_b[:, :, np.newaxis], pscore=pi_b[np.arange(n), action], q_x_e=np.zeros(3),
    )  # fmt: skip
    fb = from_obp(bf, metadata={"source": "obp-synthetic"})
    assert fb.action_dist.shape == (n, K) and fb.position is None
    assert fb.reward.dtype == np.float64 and fb.metadata == {"source": "obp-synthetic"}
    with pytest.raises(ValueError, match=r"from_obp: n_rounds is 99 but action has 100 rows"):
        from_obp(dict(bf, n_rounds=99))
    with pytest.raises(ValueError, match=r"from_obp: bandit_feedback lacks \['pscore'\]"):
        from_obp({k: v for k, v in bf.items() if k != "pscore"})


def write_obd_folder(root, n=40, K=6, seed=0):
    """A tiny campaign folder with OBD's layout: <root>/random/men/{men.csv, item_context.csv}."""
    rng = np.random.default_rng(seed)
    folder = root / "random" / "men"
    folder.mkdir(parents=True)
    ts = pd.date_range("2019-11-24", periods=n, freq="37s", tz="UTC").astype(str).to_numpy()
    data = pd.DataFrame({
        "timestamp": ts[rng.permutation(n)],  # rows out of time order, as a raw file may be
        "item_id": rng.integers(0, K, n),
        "position": rng.integers(1, 4, n),  # OBD positions are 1, 2, 3
        "click": rng.binomial(1, 0.2, n),
        "propensity_score": np.full(n, 1 / K),
        "user_feature_0": rng.choice(["81ce", "cef3", "03a5"], n),
        "user_feature_1": rng.choice(["2723", "9b2d"], n),
    })  # fmt: skip
    for k in range(K):
        data[f"user-item_affinity_{k}"] = rng.integers(0, 3, n).astype(float)
    data.to_csv(folder / "men.csv")  # with the unnamed index column, like OBD
    items = pd.DataFrame({
        "item_id": np.arange(K),
        "item_feature_0": rng.uniform(-0.7, 0.7, K).round(6),
        "item_feature_1": rng.choice(["e2a4", "7c1a", "0b9e"], K),
        "item_feature_2": rng.choice(["11aa", "22bb"], K),
    })  # fmt: skip
    items.to_csv(folder / "item_context.csv")
    return folder, data, items


def test_load_obd_matches_obp_preprocessing(tmp_path):
    folder, data, items = write_obd_folder(tmp_path)
    fb = load_obd(folder)
    order = np.argsort(data["timestamp"].to_numpy(), kind="stable")
    d = data.iloc[order]
    np.testing.assert_array_equal(fb.action, d["item_id"].to_numpy())
    np.testing.assert_array_equal(fb.position, d["position"].to_numpy() - 1)  # 0-based
    np.testing.assert_array_equal(fb.reward, d["click"].to_numpy())
    np.testing.assert_array_equal(fb.pscore, d["propensity_score"].to_numpy())
    # pd.get_dummies(user_feature_*, drop_first=True): per column, sorted categories minus the first
    cols = []
    for c in ("user_feature_0", "user_feature_1"):
        cats = sorted(d[c].unique())
        cols += [(d[c].to_numpy() == v).astype(float) for v in cats[1:]]
    np.testing.assert_array_equal(fb.context, np.column_stack(cols))
    # action_context: label-encoded item_id, item_feature_1, item_feature_2, then item_feature_0
    enc = lambda s: np.unique(s.to_numpy(), return_inverse=True)[1]  # noqa: E731
    expected = np.column_stack([enc(items["item_id"]), enc(items["item_feature_1"]),
                                enc(items["item_feature_2"]), items["item_feature_0"]])  # fmt: skip
    np.testing.assert_array_equal(fb.action_context, expected)
    assert fb.n_actions == 6 and fb.len_list == 3
    assert fb.metadata["behavior_policy"] == "random" and fb.metadata["campaign"] == "men"
    # the CSV path works too, and the affinity columns can be appended
    fb2 = load_obd(folder / "men.csv", include_affinity=True)
    aff = d[[f"user-item_affinity_{k}" for k in range(6)]].to_numpy()
    np.testing.assert_array_equal(fb2.context, np.c_[fb.context, aff])


def test_load_obd_errors(tmp_path):
    with pytest.raises(FileNotFoundError):
        load_obd(tmp_path / "missing")
    folder, _, _ = write_obd_folder(tmp_path)
    (folder / "item_context.csv").unlink()
    with pytest.raises(FileNotFoundError, match="item_context.csv is missing"):
        load_obd(folder)
