"""Progress that a person can see: a tqdm bar on a terminal, periodic plain lines elsewhere.

Every long loop (online steps, OPE estimators, coverage replications, PPO training) reports
through :func:`progress`, so runs never sit silent for tens of seconds. Under a pipe, a log
file or a Hydra launcher there is no terminal: then one line per ``every_s`` seconds is printed
(``[desc] 40% 80,000/200,000 step 12.1s``), with the job's prefix when one is set.

    from recsim_causal.progress import progress

    with progress(total=n, desc="linucb", unit="step") as bar:
        for ...:
            bar.update(batch)
"""

from __future__ import annotations

import contextlib
import os
import sys
import time
from collections.abc import Iterator
from typing import Any

#: Prefix of every progress line (set per job by the runner under sweep launchers).
PREFIX_ENV = "RECSIM_JOB_PREFIX"


class _Lines:
    """tqdm's ``update``/``set_postfix_str`` for a non-terminal: a line every ``every_s`` seconds."""

    def __init__(self, total: int | None, desc: str, unit: str, every_s: float, stream: Any):
        self.total, self.desc, self.unit, self.every_s, self.stream = total, desc, unit, every_s, stream
        self.n, self.postfix = 0, ""
        self.start = self.last = time.perf_counter()

    def update(self, n: int = 1) -> None:
        self.n += n
        now = time.perf_counter()
        if now - self.last >= self.every_s:
            self.last = now
            self._line(now)

    def set_postfix_str(self, s: str) -> None:
        self.postfix = s

    def _line(self, now: float) -> None:
        share = f"{100 * self.n / self.total:.0f}% {self.n:,}/{self.total:,}" if self.total else f"{self.n:,}"
        prefix = os.environ.get(PREFIX_ENV, "")
        text = f"{prefix}[{self.desc}] {share} {self.unit} {now - self.start:.1f}s {self.postfix}".rstrip()
        print(text, file=self.stream, flush=True)

    def close(self) -> None:
        if self.n and time.perf_counter() - self.start >= self.every_s:
            self._line(time.perf_counter())


@contextlib.contextmanager
def progress(total: int | None = None, desc: str = "", unit: str = "it", *, enabled: bool = True,
             every_s: float = 10.0, stream: Any = None) -> Iterator[Any]:
    """A progress reporter with tqdm's ``update(n)`` / ``set_postfix_str``; closed on exit.

    A tqdm bar when ``stream`` (stderr by default) is a terminal, periodic lines otherwise,
    nothing when ``enabled`` is false.
    """
    stream = stream if stream is not None else sys.stderr
    if not enabled:
        bar: Any = _Lines(total, desc, unit, float("inf"), stream)
    elif getattr(stream, "isatty", lambda: False)():
        from tqdm.auto import tqdm

        bar = tqdm(total=total, desc=desc, unit=unit, unit_scale=True, leave=False, file=stream)
    else:
        bar = _Lines(total, desc, unit, every_s, stream)
    try:
        yield bar
    finally:
        bar.close()
