#!/usr/bin/env python
"""Leaderboard of a sweep: ``python scripts/report.py <sweep dir> [--metric M] [--kind K] [--force]``.

The same command as ``recsim-report`` (see :mod:`recsim_causal.cli`).
"""

from recsim_causal.cli import report

if __name__ == "__main__":
    report()
