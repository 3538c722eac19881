"""Regenerate every output shown in README.md and docs/ from real runs.

    python scripts/make_docs.py                 # every page with output blocks
    python scripts/make_docs.py README.md       # one page
    python scripts/make_docs.py --slow          # first the long measurements other pages show (hours)
    python scripts/make_docs.py --slow dynamics sensitivity --no-pages   # some of them only

A ``text`` block preceded by ``<!-- output: NAME -->`` shows what the runnable block before it
printed. This script runs each such page's blocks exactly as the doc tests do (in a fresh
directory, at the sizes the page's ``test:`` directives set), writes what that block printed to
``docs/generated/NAME.txt`` and rewrites the output block from it; ``tests/test_docs.py`` fails
when a block and its file differ. Figures a page shows are copied from the same runs
(:data:`FIGURES`) into ``docs/img/``. Outputs are never edited by hand. An output block after a
block the tests skip (a run too long for them, e.g. ``scripts/session_ope_rmse.py``) keeps the
file that run wrote.

Some pages show measurements too long for this script's default pass (coverage calibration,
sensitivity over seeds, session OPE over datasets, adaptive agents in changing worlds): their own
scripts write them between markers of the page or into ``docs/generated/`` (:data:`SLOW`).
``--slow`` runs them first, one after the other, then regenerates the pages as usual.
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tests.docblocks import doc_pages, parse_page, run_blocks, sync_mirrors, sync_outputs  # noqa: E402

GENERATED = ROOT / "docs" / "generated"
#: page -> {file a run of that page writes (relative to its directory): where the docs show it}
FIGURES = {
    "README.md": {"multirun/readme/curves.png": "docs/img/readme_curves.png"},
    "docs/benchmarking.md": {"multirun/ope/heatmap_rmse.png": "docs/img/bench_ope_heatmap.png"},
}


#: name -> (the command, from the repository root; what it rewrites, and about how long it takes on 2 cores)
SLOW = {
    "calibrate-validity": (["scripts/calibrate_validity.py"],
                           "recsim_causal/ope/validity.json and the calibration table of docs/trust.md (~30 min)"),
    "sensitivity": (["scripts/sensitivity_check.py", "--docs", "docs/sensitivity.md"],
                    "the seed-0 tables of docs/sensitivity.md (minutes)"),
    "session-rmse": (["scripts/session_ope_rmse.py"],
                     "docs/generated/session-rmse.txt, shown in docs/ope-sessions.md (~10 min per dataset)"),
    "dynamics": (["scripts/dynamics_report.py"], "the results sections of docs/dynamics.md (~30 min)"),
    "offline": (["scripts/offline_docs.py"],
                "the result tables of docs/offline.md (~30 min; OBP_SRC=... adds OBP's IPWLearner row)"),
}


def run_slow(names: list[str]) -> None:
    """Run the :data:`SLOW` generators ``names`` (all when empty) from the repository root."""
    import subprocess

    unknown = [n for n in names if n not in SLOW]
    if unknown:
        raise SystemExit(f"error: --slow: unknown step '{unknown[0]}' (known: {', '.join(SLOW)})")
    for name in names or list(SLOW):
        cmd, what = SLOW[name]
        print(f"{name}: python {' '.join(cmd)}  ->  {what}", flush=True)
        proc = subprocess.run([sys.executable, *cmd], cwd=ROOT)
        if proc.returncode != 0:
            raise SystemExit(f"error: --slow {name}: python {' '.join(cmd)} exited {proc.returncode}")


def normalize(text: str, workdir: Path) -> str:
    """What a block printed, as a reader would see it: the run's scratch directory is '.', no
    trailing blanks."""
    text = text.replace(f"{workdir}/", "").replace(str(workdir), ".")
    return "\n".join(line.rstrip() for line in text.rstrip().splitlines()) + "\n"


def make_page(page: Path) -> list[str]:
    """Run ``page``'s blocks, write its outputs and figures; returns the output names written."""
    blocks = parse_page(page)
    wanted = [i for i, b in enumerate(blocks) if b.output]
    figures = FIGURES.get(str(page.relative_to(ROOT)), {})
    if not wanted and not figures:
        return []
    with tempfile.TemporaryDirectory(prefix="make_docs_") as tmp:
        workdir = Path(tmp).resolve()
        old_cwd = Path.cwd()
        os.chdir(workdir)
        sys.path.insert(0, str(workdir))
        try:
            printed = run_blocks(blocks, workdir)
        finally:
            os.chdir(old_cwd)
            sys.path.remove(str(workdir))
        names = []
        for i in wanted:
            before = max((j for j in range(i) if blocks[j].lang in ("python", "bash", "shell", "sh")), default=None)
            if before is not None and blocks[before].skip is not None:
                continue  # a block the tests skip (it says why): its output file comes from that run
            source = max((j for j in printed if j < i), default=None)
            if source is None:
                raise SystemExit(f"error: {blocks[i].where}: output '{blocks[i].output}' has no runnable block before it")
            GENERATED.mkdir(parents=True, exist_ok=True)
            (GENERATED / f"{blocks[i].output}.txt").write_text(normalize(printed[source], workdir), encoding="utf-8")
            names.append(blocks[i].output)
        for src, dst in figures.items():
            (ROOT / dst).parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(workdir / src, ROOT / dst)
    sync_outputs(page, GENERATED)
    return names


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("pages", nargs="*", type=Path, help="pages to regenerate (default: all with outputs)")
    parser.add_argument("--slow", nargs="*", metavar="STEP", default=None,
                        help=f"first run these long measurements (none named: all): {', '.join(SLOW)}")
    parser.add_argument("--no-pages", action="store_true", help="with --slow: only the long measurements")
    args = parser.parse_args(argv)
    os.environ.setdefault("MPLBACKEND", "Agg")
    if args.slow is not None:
        run_slow(args.slow)
        if args.no_pages:
            return
    pages = [p.resolve() for p in args.pages] or doc_pages()
    for page in pages:
        names = make_page(page) + sync_mirrors(page)
        if names:
            print(f"{page.relative_to(ROOT)}: {', '.join(names)}", flush=True)


if __name__ == "__main__":
    main()
