"""Config checks shared by the SCM, the envs and the runner.

Each raises a one-line ``ValueError`` that names the user-facing field and what would be right:

* :func:`check_keys`: unknown keys in a mapping, with the known keys and a did-you-mean,
  e.g. ``scm.nodes.click.biass: unknown key (did you mean 'bias'? known: bias, gate, parents, type)``;
* :func:`check_integer`: an integer where one is needed (``seed=1.9`` is an error, not seed 1);
* :func:`check_number`: a finite number within bounds (``env.fatigue_rate=inf`` is an error);
* :func:`check_bool`: ``true`` or ``false`` and nothing else (``overwrite=no`` is an error, not true);
* :func:`check_seed`: a seed within the one limit every generator accepts (``0 <= seed < 2**32``);
* :func:`check_memory`: a size that cannot fit in the memory available now, refused before
  anything is allocated.
"""

from __future__ import annotations

import difflib
import os
from collections.abc import Iterable, Mapping
from typing import Any

import numpy as np

#: Share of the machine's physical memory one allocation may ask for.
MEMORY_SHARE = 0.8


def check_keys(mapping: Mapping, known: Iterable[str], where: str, error: type[ValueError] = ValueError) -> None:
    """Raise ``error('<where>.<key>: unknown key (did you mean ...? known: ...)')`` for the first
    key of ``mapping`` that is not in ``known``."""
    known = sorted(set(known))
    for key in mapping:
        if key not in known:
            close = difflib.get_close_matches(str(key), known, n=1)
            hint = f"did you mean '{close[0]}'? " if close else ""
            raise error(f"{where}.{key}: unknown key ({hint}known: {', '.join(known)})")


def check_integer(value: Any, where: str, minimum: int | None = None, error: type[ValueError] = ValueError) -> int:
    """``value`` as an int; bools, floats (even 2.0), strings and None are errors."""
    ok = isinstance(value, (int, np.integer)) and not isinstance(value, (bool, np.bool_))
    if not ok or (minimum is not None and value < minimum):
        bound = f" >= {minimum}" if minimum is not None else ""
        raise error(f"{where}: expected an integer{bound}, got {value!r}")
    return int(value)


def check_number(value: Any, where: str, low: float | None = None, high: float | None = None,
                 error: type[ValueError] = ValueError) -> float:
    """``value`` as a finite float in ``[low, high]`` (either bound may be None); bools, strings,
    None, NaN and inf are errors: ``env.leave_bias: expected a finite number, got nan``."""
    ok = isinstance(value, (int, float, np.integer, np.floating)) and not isinstance(value, (bool, np.bool_))
    if ok and np.isfinite(value) and (low is None or value >= low) and (high is None or value <= high):
        return float(value)
    if low is not None and high is not None:
        want = f"a number in [{low:g}, {high:g}]"
    elif low is not None or high is not None:
        want = f"a finite number {'>=' if low is not None else '<='} {low if low is not None else high:g}"
    else:
        want = "a finite number"
    raise error(f"{where}: expected {want}, got {value!r}")


def check_bool(value: Any, where: str, error: type[ValueError] = ValueError) -> bool:
    """``value`` as a bool: only ``True`` and ``False`` (YAML's ``true``/``false``). Strings
    (``'no'``, ``'false'``), numbers and None are errors: a truthy string must never count as true."""
    if not isinstance(value, (bool, np.bool_)):
        raise error(f"{where}: expected true or false, got {value!r}")
    return bool(value)


#: Seeds are ``0 <= seed < SEED_LIMIT`` everywhere: the limit of numpy's legacy seeding, SB3's and
#: torch's ``manual_seed`` (the strictest generator a run may hand its seed to).
SEED_LIMIT = 2**32


def check_seed(value: Any, where: str = "seed", error: type[ValueError] = ValueError) -> int:
    """``value`` as a seed, an integer in ``[0, 2**32)``, else ``<where>: expected an integer in
    [0, 2**32), got ...``."""
    ok = isinstance(value, (int, np.integer)) and not isinstance(value, (bool, np.bool_))
    if not ok or not 0 <= value < SEED_LIMIT:
        raise error(f"{where}: expected an integer in [0, 2**32), got {value!r}")
    return int(value)


def physical_memory() -> int:
    """Bytes of physical memory (a large default where the OS does not say)."""
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError, AttributeError):  # pragma: no cover - non-POSIX
        return 1 << 40


def available_memory() -> int:
    """Bytes of memory available to a new allocation now (Linux's ``MemAvailable``; physical
    memory where the OS does not say)."""
    try:
        with open("/proc/meminfo", encoding="ascii") as fh:
            for line in fh:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    return physical_memory()


def check_memory(n_bytes: float, where: str, what: str) -> None:
    """Raise ``MemoryError('<where>: <what> needs ~X GiB, more than 80% of the Y GiB available')``
    when ``n_bytes`` exceeds :data:`MEMORY_SHARE` of the memory available now. Every array that
    scales with users x items (or a catalog's size) is checked here before it is allocated."""
    available = available_memory()
    if n_bytes > MEMORY_SHARE * available:
        raise MemoryError(f"{where}: {what} needs ~{n_bytes / 2**30:,.2f} GiB, more than "
                          f"{MEMORY_SHARE:.0%} of the {available / 2**30:,.1f} GiB available")


def as_resolved(cfg: Any, resolved: dict | None = None) -> dict:
    """A run config as a plain dict: ``resolved`` if given, a dict as it is, else an OmegaConf
    config resolved (interpolations filled in)."""
    if resolved is not None:
        return resolved
    if isinstance(cfg, dict):
        return cfg
    from omegaconf import OmegaConf

    return OmegaConf.to_container(cfg, resolve=True)
