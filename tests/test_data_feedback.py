"""LoggedFeedback: validation messages and the exact Parquet round trip."""

from __future__ import annotations

import json

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from recsim_causal.data import LoggedFeedback, load_parquet, save_parquet
from recsim_causal.data.parquet import METADATA_KEY
from recsim_causal.io import to_jsonable


def make_feedback(n=200, K=5, d=3, L=None, seed=0, **overrides):
    rng = np.random.default_rng(seed)
    if L is None:
        dist = rng.dirichlet(np.ones(K), size=n)
        position = None
        at = dist
    else:
        dist = rng.dirichlet(np.ones(K), size=(n, L)).transpose(0, 2, 1)
        position = rng.integers(0, L, n)
        at = dist[np.arange(n), :, position]
    action = (at.cumsum(axis=1) > rng.random((n, 1))).argmax(axis=1)
    fields = dict(
        context=rng.normal(size=(n, d)),
        action=action,
        reward=rng.binomial(1, 0.3, n).astype(float),
        pscore=at[np.arange(n), action],
        n_actions=K,
        position=position,
        action_dist=dist,
        expected_reward=rng.random(dist.shape),
        action_context=rng.normal(size=(K, 2)),
        metadata={"world": {"name": "toy", "k": np.int64(K)}, "logger": "softmax", "seed": 0},
    )
    fields.update(overrides)
    return LoggedFeedback(**fields)


def assert_same(a: LoggedFeedback, b: LoggedFeedback) -> None:
    for name in ("context", "action", "reward", "pscore", "position", "action_dist", "expected_reward", "action_context"):
        x, y = getattr(a, name), getattr(b, name)
        if x is None:
            assert y is None, name
        else:
            assert x.dtype == y.dtype and x.shape == y.shape, name
            np.testing.assert_array_equal(x, y, err_msg=name)
    assert a.n_actions == b.n_actions
    assert to_jsonable(a.metadata) == to_jsonable(b.metadata)


def test_properties_and_dtypes():
    fb = make_feedback()
    int32 = LoggedFeedback(context=fb.context, action=fb.action.astype(np.int32), reward=fb.reward,
                           pscore=fb.pscore, n_actions=5)  # fmt: skip
    assert int32.action.dtype == np.int64
    assert fb.n_rounds == 200 and fb.dim_context == 3 and fb.len_list == 1
    assert fb.action.dtype == np.int64 and fb.reward.dtype == np.float64
    fb3 = make_feedback(L=3)
    assert fb3.len_list == 3
    arrays = fb.ope_arrays()
    assert arrays["pi_b"] is fb.action_dist
    sub = fb.subset(slice(10, 20))
    assert sub.n_rounds == 10 and np.array_equal(sub.action, fb.action[10:20])


def test_validation_messages():
    fb = make_feedback()
    base = dict(context=fb.context, action=fb.action, reward=fb.reward, pscore=fb.pscore, n_actions=5)
    with pytest.raises(ValueError, match=r"^LoggedFeedback.pscore: expected shape \(200,\), got \(199,\)$"):
        LoggedFeedback(**dict(base, pscore=fb.pscore[:-1]))
    bad = fb.reward.copy()
    bad[[1, 5, 7]] = np.nan
    with pytest.raises(ValueError, match=r"^LoggedFeedback.reward contains NaN \(3 of 200 rows\)$"):
        LoggedFeedback(**dict(base, reward=bad))
    ctx = fb.context.copy()
    ctx[4, 1] = -np.inf
    with pytest.raises(ValueError, match=r"LoggedFeedback.context contains inf \(1 of 200 rows\)"):
        LoggedFeedback(**dict(base, context=ctx))
    act = fb.action.copy()
    act[0] = 5
    with pytest.raises(ValueError, match=r"LoggedFeedback.action: values must be in \[0, 5\) \(n_actions=5\); 1 of 200"):
        LoggedFeedback(**dict(base, action=act))
    with pytest.raises(ValueError, match=r"LoggedFeedback.action: expected integers, got dtype float64"):
        LoggedFeedback(**dict(base, action=fb.action.astype(float)))
    ps = fb.pscore.copy()
    ps[3] = 0.0
    with pytest.raises(ValueError, match=r"LoggedFeedback.pscore: must be in \(0, 1\]; 1 of 200"):
        LoggedFeedback(**dict(base, pscore=ps))
    with pytest.raises(ValueError, match=r"LoggedFeedback.context: expected shape \(200, dim_context\), got \(200,\)"):
        LoggedFeedback(**dict(base, context=fb.context[:, 0]))
    with pytest.raises(ValueError, match=r"LoggedFeedback.action_dist: expected shape \(200, 5\) or \(200, 5, len_list\)"):
        LoggedFeedback(**base, action_dist=fb.action_dist[:, :4])
    with pytest.raises(ValueError, match=r"LoggedFeedback.action_dist: each row must sum to 1"):
        LoggedFeedback(**base, action_dist=fb.action_dist * 1.1)
    with pytest.raises(ValueError, match=r"LoggedFeedback.pscore: must equal action_dist at the logged action"):
        LoggedFeedback(**dict(base, pscore=np.clip(fb.pscore * 0.9, 1e-3, 1)), action_dist=fb.action_dist)
    with pytest.raises(ValueError, match=r"LoggedFeedback.n_actions: expected an int"):
        LoggedFeedback(**dict(base, n_actions=5.0))
    with pytest.raises(ValueError, match=r"LoggedFeedback.metadata.bad: object is not JSON-serializable"):
        LoggedFeedback(**base, metadata={"bad": object()})
    fb3 = make_feedback(L=2)
    with pytest.raises(ValueError, match=r"LoggedFeedback.position: required when action_dist has len_list > 1"):
        LoggedFeedback(context=fb3.context, action=fb3.action, reward=fb3.reward, pscore=fb3.pscore,
                       n_actions=5, action_dist=fb3.action_dist)  # fmt: skip


@pytest.mark.parametrize("L", [None, 3])
def test_parquet_round_trip_is_exact(tmp_path, L):
    fb = make_feedback(n=500, L=L)
    path = save_parquet(fb, tmp_path / "logged.parquet")
    back = load_parquet(path)
    assert_same(fb, back)
    assert back.metadata == {"world": {"name": "toy", "k": 5}, "logger": "softmax", "seed": 0}
    # the minimal schema too
    small = LoggedFeedback(context=fb.context, action=fb.action, reward=fb.reward, pscore=fb.pscore, n_actions=5)
    save_parquet(small, tmp_path / "small.parquet")
    assert_same(small, load_parquet(tmp_path / "small.parquet"))
    # readable by plain pyarrow: one row per round, columns named as the fields
    table = pq.read_table(path)
    assert table.num_rows == 500 and {"action", "reward", "pscore", "context"} <= set(table.column_names)
    assert json.loads(table.schema.metadata[METADATA_KEY])["n_actions"] == 5


def test_foreign_parquet_is_refused(tmp_path):
    pq.write_table(pa.table({"a": [1, 2]}), tmp_path / "other.parquet")
    with pytest.raises(ValueError, match="not a recsim_causal LoggedFeedback file"):
        load_parquet(tmp_path / "other.parquet")


def test_save_is_atomic(tmp_path, monkeypatch):
    fb = make_feedback()
    target = tmp_path / "logged.parquet"
    import recsim_causal.data.parquet as parquet_mod

    def boom(table, where, **kw):
        with open(where, "wb") as fh:
            fh.write(b"PAR1 half a file")
        raise OSError("disk full")

    monkeypatch.setattr(parquet_mod.pq, "write_table", boom)
    with pytest.raises(OSError, match="disk full"):
        save_parquet(fb, target)
    assert list(tmp_path.iterdir()) == []  # no final file, no temporary left behind
