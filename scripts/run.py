#!/usr/bin/env python
"""The Hydra entry point: ``python scripts/run.py agent=linucb [env=session] [scm=confounded] [seed=3]``.

The same app as the ``recsim-run`` console command (see :mod:`recsim_causal.cli`).
Sweeps: ``python scripts/run.py -m agent=epsilon_greedy,linucb,thompson seed=0,1,2``
(``hydra/launcher=joblib_local`` in parallel processes, ``hydra/launcher=ray_local`` on Ray).
Outputs land in the Hydra run directory: summary.json, logged.parquet, regret.png (online), or
ope.json and ope.png (``experiment=ope``), coverage.json and coverage.png
(``experiment=ope_coverage``), and a W&B run (offline by default).
"""

from recsim_causal.cli import run

if __name__ == "__main__":
    run()
