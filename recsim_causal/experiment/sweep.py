"""What a sweep leaves behind: every sweep's ``multirun.yaml`` and, when it ends, its report.

``SweepReport`` is a Hydra callback (``conf/config.yaml``: ``hydra.callbacks.sweep_report``):

* ``on_multirun_start``: a second sweep into the same directory would overwrite the first
  one's ``multirun.yaml`` (Hydra writes it as the sweep starts); the earlier file is kept as
  ``multirun-<its date and time>.yaml`` first.
* ``on_multirun_end``: the sweep's report (``leaderboard.md``/``.json``/``.png``, and the
  curves of online runs) is written into the sweep directory, for every kind of result the
  sweep holds, over all its runs (an earlier sweep's too), replacing an earlier report of the
  default metric (a sweep of compare runs has none: each compare.json is its own report).
  A report that cannot be written is one warning line; the sweep's runs and
  its exit status stay as they are.
"""

from __future__ import annotations

import sys
from datetime import datetime
from pathlib import Path
from typing import Any

from hydra.experimental.callback import Callback


def keep_multirun_yaml(sweep_dir: Path) -> Path | None:
    """Rename an existing ``sweep_dir/multirun.yaml`` to ``multirun-<mtime>[-n].yaml`` so the
    next sweep's does not replace it; returns the new path (None when there was none)."""
    path = Path(sweep_dir) / "multirun.yaml"
    if not path.is_file():
        return None
    stamp = datetime.fromtimestamp(path.stat().st_mtime).strftime("%Y-%m-%d_%H-%M-%S")
    target, n = path.with_name(f"multirun-{stamp}.yaml"), 1
    while target.exists():
        n += 1
        target = path.with_name(f"multirun-{stamp}-{n}.yaml")
    path.rename(target)
    return target


def write_sweep_report(sweep_dir: Path) -> list[Path]:
    """The report of the results under ``sweep_dir`` (default metric); returns the files
    written. Raises what the report raises (a report of recsim-report's is never replaced)."""
    from recsim_causal.experiment.report import ROW_BUILDERS, build_report, find_runs

    kinds = sorted({r.kind for r in find_runs(sweep_dir)} & set(ROW_BUILDERS))
    if len(kinds) > 1:
        raise ValueError(f"the sweep holds {', '.join(kinds)} runs: pick one with recsim-report --kind")
    written: list[Path] = []
    if kinds:
        written += build_report(sweep_dir, None, kind=kinds[0], auto=True)[1]
    return written


class SweepReport(Callback):
    """Hydra callback: keep each sweep's multirun.yaml; write the report when the sweep ends."""

    def __init__(self, enabled: bool = True) -> None:
        self.enabled = bool(enabled)

    def on_multirun_start(self, config: Any, **kwargs: Any) -> None:
        try:
            kept = keep_multirun_yaml(Path(str(config.hydra.sweep.dir)))
        except OSError as e:
            print(f"WARNING sweep: could not keep the earlier multirun.yaml ({e})", file=sys.stderr)
            return
        if kept is not None:
            print(f"sweep: the earlier sweep's multirun.yaml is kept as {kept.name}", file=sys.stderr)

    def on_multirun_end(self, config: Any, **kwargs: Any) -> None:
        if not self.enabled:
            return
        sweep_dir = Path(str(config.hydra.sweep.dir))
        try:
            written = write_sweep_report(sweep_dir)
        except Exception as e:  # the report never fails a sweep whose runs are done
            msg = str(e).splitlines()[0] if str(e) else type(e).__name__
            print(f"WARNING sweep: no report written ({msg}); run recsim-report {sweep_dir}", file=sys.stderr)
            return
        if written:
            names = ", ".join(dict.fromkeys(p.name for p in written))
            print(f"report: {sweep_dir}: {names}", flush=True)
