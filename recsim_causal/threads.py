"""Thread limits for the small, hot array operations of the project.

On a 2-core machine shared with other processes, BLAS and torch worker threads spin waiting
for each other: the world's products (n x ~20 x K), the agents' ridge updates, PPO's 64-unit
layers and the reward model's MLP ran up to 10x slower with two threads than with one.
"""

from __future__ import annotations

import contextlib
from typing import Iterator

_BLAS = None
_DEPTH = 0  # how many single_threaded_blas contexts are open (BLAS threads are process-wide)


@contextlib.contextmanager
def single_threaded_blas() -> Iterator[None]:
    """A context in which BLAS (numpy's matrix products) runs on one thread. Nested contexts
    cost nothing (setting and restoring OpenBLAS's threads costs ~0.1 ms, as much as a
    4096 x 20 x 100 product): the runner and bench.py open one around a whole run."""
    global _BLAS, _DEPTH
    if _BLAS is None:
        from threadpoolctl import ThreadpoolController

        _BLAS = ThreadpoolController()
    with contextlib.nullcontext() if _DEPTH else _BLAS.limit(limits=1, user_api="blas"):
        _DEPTH += 1
        try:
            yield
        finally:
            _DEPTH -= 1


@contextlib.contextmanager
def torch_threads(n: int | None) -> Iterator[None]:
    """Run with ``n`` intra-op torch threads, restoring the setting after (``None``: unchanged)."""
    if n is None:
        yield
        return
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(before)
