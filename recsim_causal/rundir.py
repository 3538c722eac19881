"""A run directory: one run at a time, another run's results never replaced by mistake.

:func:`claim_run_dir` is what a run does before it writes anything:

* it takes the directory's lock (``.recsim.lock``, an exclusive ``flock`` taken without waiting,
  the holder's pid written in it). A second run started at the same moment into the same
  directory is refused (``... is in use by run pid N``). The kernel drops the lock when its
  process ends, however it ends, so a lock file left by a killed run (a dead pid) never blocks;
* it refuses a directory that holds another run's results unless ``overwrite=true``;
* with ``overwrite=true`` it removes the earlier run's result files (``*.json``, ``*.parquet``,
  ``*.png``, ``wandb/``), so none of them stays beside the new run's files, whatever the new
  run writes;
* it removes temporary files that a killed run's writers left (:func:`recsim_causal.io.is_temporary`).

    from recsim_causal.rundir import claim_run_dir

    with claim_run_dir("runs/a", overwrite=False):
        ...  # write results
"""

from __future__ import annotations

import atexit
import contextlib
import os
import shutil
from collections.abc import Iterator
from pathlib import Path

from recsim_causal.io import is_temporary

try:
    import fcntl
except ImportError:  # pragma: no cover - Windows: no lock, the results check still applies
    fcntl = None

__all__ = ["LOCK_NAME", "RESULT_SUFFIXES", "check_run_dir", "claim_run_dir", "lock_run_dir", "unlock_run_dir"]

LOCK_NAME = ".recsim.lock"
#: What a run writes into its directory and an overwrite removes (besides ``wandb/``).
RESULT_SUFFIXES = (".json", ".parquet", ".png")
_KEPT = (".hydra", LOCK_NAME)  # Hydra's config of the run, and the lock; logs (*.log) too

_held: dict[Path, int] = {}  # directories this process holds -> the lock file's descriptor


def _key(path: str | os.PathLike[str]) -> Path:
    return Path(path).resolve()


def _check_links(path: Path) -> None:
    """Refuse a run directory that is a dangling symlink, or whose ``.hydra`` is a symlink (Hydra
    would write the run's config wherever it points)."""
    if path.is_symlink() and not path.exists():
        raise ValueError(f"hydra.run.dir: {path} is a symlink to {os.readlink(path)}, which does not exist")
    if (path / ".hydra").is_symlink():
        raise ValueError(f"hydra.run.dir: {path / '.hydra'} is a symlink (to {os.readlink(path / '.hydra')}); "
                         "Hydra would write the run's config there: remove it or choose another directory")


def lock_run_dir(path: str | os.PathLike[str]) -> bool:
    """Take the run directory's lock for this process (creating the directory); True when taken
    now, False when this process already holds it. Raises ``ValueError('hydra.run.dir: <path>
    is in use by run pid N ...')`` when another live process holds it."""
    key = _key(path)
    if key in _held or fcntl is None:
        return False
    _check_links(Path(path))
    try:
        key.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise ValueError(f"hydra.run.dir: cannot create {path}: {e.strerror}") from None
    while True:
        fd = os.open(key / LOCK_NAME, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.pread(fd, 32, 0).decode(errors="replace").strip() or "?"
            os.close(fd)
            raise ValueError(f"hydra.run.dir: {key} is in use by another run (pid {holder}); "
                             "choose another directory or wait for that run to end") from None
        except BaseException:
            os.close(fd)
            raise
        try:  # the holder before us may have removed the file as it let go: lock the one on disk
            if os.stat(key / LOCK_NAME).st_ino == os.fstat(fd).st_ino:
                break
        except FileNotFoundError:
            pass
        os.close(fd)
    os.ftruncate(fd, 0)
    os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
    _held[key] = fd
    return True


def unlock_run_dir(path: str | os.PathLike[str]) -> None:
    """Release this process's lock on the run directory (nothing if it holds none)."""
    fd = _held.pop(_key(path), None)
    if fd is None:
        return
    with contextlib.suppress(OSError):
        os.unlink(_key(path) / LOCK_NAME)  # still ours: no other process can hold it meanwhile
    os.close(fd)


@atexit.register
def _unlock_all() -> None:
    for key in list(_held):
        unlock_run_dir(key)


def _results(path: Path) -> list[Path]:
    """The entries of ``path`` that are another run's output (not Hydra's ``.hydra/``, logs,
    the lock or temporary files)."""
    if not path.is_dir():
        return []
    return sorted(p for p in path.iterdir()
                  if p.name not in _KEPT and p.suffix != ".log" and not is_temporary(p))


def check_run_dir(out_dir: str | os.PathLike[str], overwrite: bool = False) -> None:
    """Refuse a run directory that already holds another run's results, unless ``overwrite``."""
    taken = [] if overwrite else _results(Path(out_dir))
    if taken:
        raise ValueError(f"hydra.run.dir: {out_dir} already holds another run's results "
                         f"({', '.join(p.name for p in taken[:3])}); choose another directory or pass overwrite=true")


def _clear(out_dir: Path, overwrite: bool) -> None:
    """Remove killed writers' temporary files and, when ``overwrite``, the earlier results."""
    for p in out_dir.iterdir() if out_dir.is_dir() else ():
        stale = is_temporary(p) or overwrite and (
            p.suffix in RESULT_SUFFIXES and p.is_file() or p.name == "wandb" and p.is_dir())
        if stale:
            if p.is_dir() and not p.is_symlink():
                shutil.rmtree(p)
            else:
                p.unlink(missing_ok=True)


@contextlib.contextmanager
def claim_run_dir(out_dir: str | os.PathLike[str], overwrite: bool = False) -> Iterator[Path]:
    """Hold ``out_dir`` for one run (see the module's docstring): lock, check, clear; the lock is
    released when the block ends (or, taken earlier by this process, kept until then)."""
    out = Path(out_dir)
    lock_run_dir(out)
    try:
        check_run_dir(out, overwrite)
        _clear(out, overwrite)
        yield out
    finally:
        unlock_run_dir(out)
