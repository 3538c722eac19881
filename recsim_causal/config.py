"""Config checks shared by the SCM, the envs and the runner.

Each raises a one-line ``ValueError`` that names the user-facing field and what would be right:

* :func:`check_keys`: unknown keys in a mapping, with the known keys and a did-you-mean,
  e.g. ``scm.nodes.click.biass: unknown key (did you mean 'bias'? known: bias, gate, parents, type)``;
* :func:`check_integer`: an integer where one is needed (``seed=1.9`` is an error, not seed 1);
* :func:`check_memory`: a size that cannot fit in memory, refused before anything is allocated.
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


def physical_memory() -> int:
    """Bytes of physical memory (a large default where the OS does not say)."""
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError, AttributeError):  # pragma: no cover - non-POSIX
        return 1 << 40


def check_memory(n_bytes: float, where: str, what: str) -> None:
    """Raise ``MemoryError('<where>: <what> needs ~X GiB, more than this machine's Y GiB ...')``
    when ``n_bytes`` exceeds :data:`MEMORY_SHARE` of physical memory."""
    limit = MEMORY_SHARE * physical_memory()
    if n_bytes > limit:
        raise MemoryError(f"{where}: {what} needs ~{n_bytes / 2**30:,.1f} GiB, more than "
                          f"{MEMORY_SHARE:.0%} of this machine's {physical_memory() / 2**30:,.1f} GiB")
