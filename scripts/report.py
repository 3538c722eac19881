#!/usr/bin/env python
"""Leaderboard of a sweep: ``python scripts/report.py <sweep dir> [--metric cumulative_regret]``.

Prints a markdown table (mean and 95% CI over seeds per agent) and writes leaderboard.md and
leaderboard.png into the sweep directory.
"""

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from recsim_causal.experiment.report import write_report  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("sweep_dir", type=Path)
    parser.add_argument("--metric", default="cumulative_regret")
    args = parser.parse_args()
    try:
        print(write_report(args.sweep_dir, args.metric))
    except ValueError as e:
        print(f"error: {e}", file=sys.stderr)
        sys.exit(2)
    print(f"\nwritten: {args.sweep_dir / 'leaderboard.md'}, {args.sweep_dir / 'leaderboard.png'}")


if __name__ == "__main__":
    main()
