#!/usr/bin/env python
"""The Hydra entry point: ``python scripts/run.py agent=linucb [env=session] [scm=confounded] [seed=3]``.

Sweeps: ``python scripts/run.py -m agent=epsilon_greedy,linucb,thompson seed=0,1,2``
(``hydra/launcher=joblib`` in parallel processes, ``hydra/launcher=ray_local`` or ``ray`` on Ray).
Outputs land in the Hydra run directory: summary.json, logged.parquet, regret.png (online), or
ope.json and ope.png (``experiment=ope``), and a W&B run (offline by default).
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

import hydra
from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig, OmegaConf

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
os.environ.setdefault("HF_HUB_OFFLINE", "1")

from recsim_causal.experiment.runner import run_job  # noqa: E402


@hydra.main(version_base="1.3", config_path=str(ROOT / "conf"), config_name="config")
def main(cfg: DictConfig) -> dict | None:
    hc = HydraConfig.get()
    try:
        return run_job(cfg, Path(hc.runtime.output_dir), hc)
    except (ValueError, TypeError, KeyError) as e:  # config and input errors: one line, no traceback
        print(f"error: {str(e).splitlines()[0] if str(e) else type(e).__name__}", file=sys.stderr)
        sys.exit(2)


if __name__ == "__main__":
    main()
