"""What the ``offline_*.py`` scripts share: their common options, the timed fits and the table
of true values they print (and write with ``--out``)."""

from __future__ import annotations

import argparse
import time
from pathlib import Path
from typing import Any, Callable, Iterable

from recsim_causal.io import write_text


def parser(doc: str, truth: str, truth_default: int) -> argparse.ArgumentParser:
    """The options every script has: ``--epsilon``, ``--seed``, ``--out`` and the size of its truth."""
    ap = argparse.ArgumentParser(description=doc.splitlines()[0])
    ap.add_argument(f"--{truth}", type=int, default=truth_default)
    ap.add_argument("--epsilon", type=float, default=0.2)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", type=Path, default=None, help="also write the table to this file")
    return ap


def timed_fits(learners: dict[str, Any], fit_one: Callable[[Any], Any]) -> list[tuple[str, Any, float]]:
    """(name, policy, seconds) of ``fit_one(kwargs)`` for every learner."""
    rows = []
    for name, kw in learners.items():
        start = time.perf_counter()
        rows.append((name, fit_one(kw), time.perf_counter() - start))
    return rows


def emit(title: str, value: str, rows: Iterable[tuple[str, float, float, float | None]], out: Path | None,
         width: int = 44, digits: int = 4) -> None:
    """Print the table (name, value, its s.e., fit seconds or None) under ``title``; ``out``: also
    write it there (atomically)."""
    lines = [title, f"{'policy':<{width}} {value:>8} {'s.e.':>{digits + 4}} {'fit s':>7}"]
    for name, v, se, wall in rows:
        lines.append(f"{name:<{width}} {v:8.{digits}f} {se:{digits + 4}.{digits}f} "
                     f"{'' if wall is None else f'{wall:7.1f}'}".rstrip())
    print("\n".join(lines))
    if out is not None:
        write_text(out, "\n".join(lines) + "\n")
