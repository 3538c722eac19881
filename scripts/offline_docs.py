#!/usr/bin/env python
"""Regenerate the result tables of docs/offline.md from real runs at the default sizes.

    OBP_SRC=/tmp/obp/obp-0.5.7 python scripts/offline_docs.py            # every table (about 30 min on 2 cores)
    python scripts/offline_docs.py experiment sessions                  # some of them

Each part writes ``docs/generated/offline-<part>.txt``; the page's ``<!-- output: offline-<part> -->``
blocks are then rewritten from those files (as ``scripts/make_docs.py`` does for every page), so
the tables on the page are never pasted by hand:

- ``experiment``: ``scripts/run.py experiment=offline`` (the default config), its ``select_by`` rows;
- ``experiment-session``: ``scripts/run.py experiment=offline env=session``, its ``select_by`` rows;
- ``obp``: ``scripts/offline_obp.py`` (OBP's ``IPWLearner`` row when ``OBP_SRC`` is set, see its doc);
- ``sessions``: ``scripts/offline_sessions.py``;
- ``slate``: ``scripts/offline_slate.py``.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from recsim_causal.io import write_text  # noqa: E402
from recsim_causal.learn.judge import JudgeResult  # noqa: E402
from recsim_causal.results import format_table  # noqa: E402
from tests.docblocks import sync_outputs  # noqa: E402

GENERATED = ROOT / "docs" / "generated"
PAGE = ROOT / "docs" / "offline.md"
ENV = {**os.environ, "HF_HUB_OFFLINE": "1", "WANDB_MODE": "disabled"}


def _run_experiment(*overrides: str) -> dict:
    """``scripts/run.py experiment=offline <overrides>`` in a scratch directory; its offline.json."""
    with tempfile.TemporaryDirectory(prefix="offline_docs_") as tmp:
        cmd = [sys.executable, str(ROOT / "scripts" / "run.py"), "experiment=offline", *overrides,
               "wandb.mode=disabled", f"hydra.run.dir={tmp}"]  # fmt: skip
        subprocess.run(cmd, check=True, env=ENV, stdout=subprocess.DEVNULL)
        return json.loads((Path(tmp) / "offline.json").read_text())


def experiment_table(summary: dict) -> str:
    """The one-item run's rows for its ``select_by`` estimator, its notes, the references."""
    by = summary["selection"]["by"]
    result = JudgeResult(summary["logger"], summary["learners"], summary["selection"], summary["n_train"],
                         summary["n_heldout"], [by])  # fmt: skip
    ref = [f"online best ({summary['online_best']['agent']}) true value {summary['online_best']['true_value']:.4f}; "
           f"oracle {summary['oracle']['true_value']:.4f}"]
    return format_table(result.TABLE_COLUMNS, result.table_rows(), result.notes() + ref)


def session_table(summary: dict) -> str:
    """The session run's rows for its ``select_by`` estimator and its notes (as the run prints them)."""
    from recsim_causal.experiment.offline import SESSION_COLUMNS

    s, by = summary["selection"], summary["selection"]["by"]
    rows = []
    for name, r in summary["learners"].items():
        h = r["heldout"][by]
        rows.append([name, r["true_value"], r["true_value_se"], by, h["estimate"], h["ci_low"], h["ci_high"],
                     r["ope_train"][by], r["ope_train"][by] - r["true_value"]])  # fmt: skip
    notes = [f"per-session return (gamma {summary['gamma']:g}); learned on {summary['n_train']:,} sessions, "
             f"estimated on {summary['n_heldout']:,} held-out sessions",
             f"logger {summary['logger']['true_value']:.3f}; online best ({summary['online_best']['agent']}) "
             f"{summary['online_best']['true_value']:.3f}; myopic oracle (best immediate item; not the session "
             f"optimum) {summary['oracle']['true_value']:.3f}",
             f"pick by held-out {by}: {s['pick']} (true {s['pick_true_value']:.3f}); truly best: {s['best']} "
             f"(true {s['best_true_value']:.3f}); regret {s['regret']:.3f}"]  # fmt: skip
    return format_table(SESSION_COLUMNS, rows, notes)


def _script(name: str, out: Path) -> None:
    subprocess.run([sys.executable, str(ROOT / "scripts" / name), "--out", str(out)], check=True, env=ENV,
                   stdout=subprocess.DEVNULL)  # fmt: skip


def _write(out: Path, text: str) -> None:
    write_text(out, "\n".join(line.rstrip() for line in text.rstrip().splitlines()) + "\n")


PARTS = {
    "experiment": lambda out: _write(out, experiment_table(_run_experiment())),
    "experiment-session": lambda out: _write(out, session_table(_run_experiment("env=session"))),
    "obp": lambda out: _script("offline_obp.py", out),
    "sessions": lambda out: _script("offline_sessions.py", out),
    "slate": lambda out: _script("offline_slate.py", out),
}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("parts", nargs="*", help=f"some of {', '.join(PARTS)} (default: all)")
    args = ap.parse_args(argv)
    unknown = [p for p in args.parts if p not in PARTS]
    if unknown:
        ap.error(f"parts: unknown {', '.join(unknown)} (known: {', '.join(PARTS)})")
    for part in args.parts or list(PARTS):
        out = GENERATED / f"offline-{part}.txt"
        print(f"{part}: writing {out.relative_to(ROOT)}", flush=True)
        PARTS[part](out)
    print("rewrote:", ", ".join(sync_outputs(PAGE, GENERATED)) or "nothing (the page is up to date)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
