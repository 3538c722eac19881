"""recsim_causal.io: atomic writes leave the old file or nothing, never half a file."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

from recsim_causal.io import atomic_path, atomic_write, read_json, to_jsonable, write_json


def test_atomic_path_replaces_only_on_success(tmp_path):
    target = tmp_path / "sub" / "plot.png"
    with atomic_path(target) as tmp:
        assert tmp.parent == target.parent and tmp.suffix == ".png" and tmp != target
        tmp.write_bytes(b"new")
    assert target.read_bytes() == b"new"
    with pytest.raises(RuntimeError):
        with atomic_path(target) as tmp:
            tmp.write_bytes(b"half")
            raise RuntimeError("writer crashed")
    assert target.read_bytes() == b"new"
    assert sorted(p.name for p in target.parent.iterdir()) == ["plot.png"]


def test_atomic_write_leaves_no_file_when_the_writer_raises(tmp_path):
    target = tmp_path / "summary.json"
    with pytest.raises(ValueError):
        with atomic_write(target) as fh:
            fh.write('{"half": ')
            raise ValueError("boom")
    assert list(tmp_path.iterdir()) == []
    with atomic_write(target) as fh:
        fh.write("ok")
    assert target.read_text() == "ok"
    with pytest.raises(ValueError, match="atomic_write.mode"):
        with atomic_write(target, mode="a"):
            pass


def test_write_json_converts_numpy_and_nan(tmp_path):
    obj = {"sps": np.float64(1.5e6), "n": np.int64(3), "ok": np.bool_(True), "arr": np.arange(3),
           "nan": float("nan"), "nested": {"t": (1, 2)}}  # fmt: skip
    write_json(tmp_path / "s.json", obj)
    assert read_json(tmp_path / "s.json") == {"sps": 1.5e6, "n": 3, "ok": True, "arr": [0, 1, 2],
                                               "nan": None, "nested": {"t": [1, 2]}}  # fmt: skip
    with pytest.raises(TypeError, match=r"value.bad: object is not JSON-serializable"):
        to_jsonable({"bad": object()})
    assert json.loads(json.dumps(to_jsonable({"x": math.inf}))) == {"x": None}
