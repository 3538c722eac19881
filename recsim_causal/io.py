"""Atomic file writes and JSON helpers shared by the whole project.

Every result file (logged.parquet, summary.json, ope.json, plots) is written through
:func:`atomic_path`: the writer fills a temporary file in the destination's own directory,
and only a writer that finishes is renamed onto the final name (``os.replace``, atomic on
POSIX and Windows). A crash or an exception leaves the previous file, or no file, never a
half-written one.

    from recsim_causal.io import atomic_path, atomic_write, write_json

    with atomic_path("runs/x/plot.png") as tmp:     # a path: for writers that take one
        fig.savefig(tmp)                            # tmp ends in ".png", so format inference works
    with atomic_write("runs/x/notes.txt") as f:     # a file object: for writers that take one
        f.write("hello")
    write_json("runs/x/summary.json", {"sps": np.float64(1.5e6)})
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import signal
import tempfile
import threading
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import IO, Any

import numpy as np

__all__ = ["atomic_path", "atomic_write", "write_json", "write_text", "read_json", "to_jsonable", "is_temporary"]


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


class Terminated(SystemExit):
    """SIGTERM turned into an exception, so ``finally`` blocks (temporary files) run."""


def _raise_terminated(signum: int, frame: Any) -> None:
    raise Terminated(128 + signum)


@contextlib.contextmanager
def _sigterm_unwinds() -> Iterator[None]:
    """While the block runs, SIGTERM raises :class:`Terminated` (instead of killing the process
    outright) when the default handler is in place and this is the main thread."""
    if threading.current_thread() is not threading.main_thread() or \
            signal.getsignal(signal.SIGTERM) is not signal.SIG_DFL:
        yield
        return
    signal.signal(signal.SIGTERM, _raise_terminated)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, signal.SIG_DFL)


def _temporary_name(final: Path) -> tuple[str, str]:
    """(prefix, suffix) of :func:`atomic_path`'s temporary files for ``final``."""
    return f".{final.name}.", f".tmp{final.suffix}"


def is_temporary(path: str | os.PathLike[str]) -> bool:
    """Whether ``path`` is one of :func:`atomic_path`'s temporary files (``.x.png.<random>.tmp.png``):
    a writer's file that a killed process (``kill -9``) left behind."""
    name = Path(path).name
    return name.startswith(".") and ".tmp" in name and name.count(".") >= 3


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike[str], *, fsync: bool = True) -> Iterator[Path]:
    """Yield a temporary path next to ``path``; on a clean exit, rename it onto ``path``.

    The temporary name keeps the final suffix (``.x.png.tmp123.png``), so writers that
    infer a format from the extension (matplotlib, pyarrow) behave as for the final name.
    If the block raises, or the process gets SIGINT or SIGTERM, the temporary file is removed
    and ``path`` is left untouched. The file gets the mode the umask gives (0644 under umask
    022), like a plain ``open``. Parent directories are created.
    """
    final = Path(path)
    final.parent.mkdir(parents=True, exist_ok=True)
    with _sigterm_unwinds():
        prefix, suffix = _temporary_name(final)
        fd, tmp_name = tempfile.mkstemp(dir=final.parent, prefix=prefix, suffix=suffix)
        os.close(fd)
        tmp = Path(tmp_name)
        try:
            os.chmod(tmp, 0o666 & ~_umask())
            yield tmp
            if not tmp.exists():
                raise FileNotFoundError(f"atomic_path: the writer did not create {tmp}")
            os.chmod(tmp, 0o666 & ~_umask())  # a writer may have replaced the file
            if fsync:
                with open(tmp, "rb") as fh:
                    os.fsync(fh.fileno())
            os.replace(tmp, final)
        except BaseException as e:
            with contextlib.suppress(FileNotFoundError):
                tmp.unlink()
            if isinstance(e, OSError) and not isinstance(e, FileNotFoundError) and not e.filename:
                # a writer's error (a full disk, a file-size limit) names no file: name the result
                reason = e.strerror or (os.strerror(e.errno) if e.errno else str(e).splitlines()[0])
                raise OSError(e.errno, f"cannot write it: {reason}", str(final)) from e
            raise


@contextlib.contextmanager
def atomic_write(
    path: str | os.PathLike[str], mode: str = "w", encoding: str | None = "utf-8"
) -> Iterator[IO[Any]]:
    """Yield an open file object whose contents replace ``path`` only if the block succeeds.

    ``mode`` is "w" (text) or "wb" (binary).
    """
    if mode not in ("w", "wb"):
        raise ValueError(f"atomic_write.mode: expected 'w' or 'wb', got {mode!r}")
    with atomic_path(path) as tmp:
        if mode == "wb":
            with open(tmp, "wb") as fh:
                yield fh
        else:
            with open(tmp, "w", encoding=encoding, newline="") as fh:
                yield fh


def to_jsonable(obj: Any, *, _where: str = "value", nulls: dict[str, str] | None = None) -> Any:
    """Convert numpy scalars/arrays, Paths, tuples and sets into plain JSON types.

    Non-finite floats become None (JSON has no NaN/inf); with ``nulls``, each one's path and
    reason (``nan``, ``inf``, ``-inf``) is recorded there. Raises TypeError naming the
    offending key for anything else that JSON cannot hold.
    """
    if obj is None or isinstance(obj, (bool, str)):
        return obj
    if isinstance(obj, (int, np.integer)) and not isinstance(obj, np.bool_):
        return int(obj)
    if isinstance(obj, np.bool_):
        return bool(obj)
    if isinstance(obj, (float, np.floating)):
        f = float(obj)
        if math.isfinite(f):
            return f
        if nulls is not None:
            nulls[_where] = "nan" if math.isnan(f) else ("inf" if f > 0 else "-inf")
        return None
    if isinstance(obj, np.ndarray):
        return to_jsonable(obj.tolist(), _where=_where, nulls=nulls)
    if isinstance(obj, os.PathLike):
        return os.fspath(obj)
    if isinstance(obj, Mapping):
        out = {}
        for k, v in obj.items():
            if not isinstance(k, (str, int, np.integer)):
                raise TypeError(f"{_where}: key {k!r} is not a string")
            out[str(k)] = to_jsonable(v, _where=f"{_where}.{k}" if _where else str(k), nulls=nulls)
        return out
    if isinstance(obj, (list, tuple, set, frozenset)):
        return [to_jsonable(v, _where=f"{_where}[{i}]", nulls=nulls) for i, v in enumerate(obj)]
    raise TypeError(f"{_where}: {type(obj).__name__} is not JSON-serializable")


def write_json(path: str | os.PathLike[str], obj: Any, *, indent: int = 2) -> None:
    """Write ``obj`` as JSON to ``path`` atomically (numpy types converted, NaN -> null)."""
    text = json.dumps(to_jsonable(obj), indent=indent, sort_keys=False, allow_nan=False)
    with atomic_write(path, "w") as fh:
        fh.write(text + "\n")


def write_text(path: str | os.PathLike[str], text: str) -> None:
    """Write ``text`` to ``path`` atomically, its folder created if missing."""
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    with atomic_write(path, "w") as fh:
        fh.write(text)


def read_json(path: str | os.PathLike[str]) -> Any:
    """Read a JSON file."""
    with open(path, encoding="utf-8") as fh:
        return json.load(fh)
