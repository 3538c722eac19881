"""experiment=ope for each setting: one straight path per setting, picked from the env config.

one item (Bandit-v0, slate_size 1): :mod:`recsim_causal.experiment.ope`
slates   (Bandit-v0, slate_size > 1): :mod:`recsim_causal.experiment.ope_slate`
sessions (Session-v0):                :mod:`recsim_causal.experiment.ope_session`
"""

from __future__ import annotations

from pathlib import Path

from recsim_causal.experiment.tracking import Tracker


def run_setting(resolved: dict, out_dir: str | Path, tracker: Tracker) -> dict:
    """Run the slate or session OPE path for ``resolved["env"]``."""
    env_cfg = resolved["env"]
    if env_cfg["id"] == "RecSimCausal/Session-v0":
        from recsim_causal.experiment.ope_session import run_ope_session

        return run_ope_session(resolved, out_dir, tracker)
    if env_cfg["id"] == "RecSimCausal/Bandit-v0":
        from recsim_causal.experiment.ope_slate import run_ope_slate

        return run_ope_slate(resolved, out_dir, tracker)
    raise ValueError(f"env.id: experiment=ope knows RecSimCausal/Bandit-v0 and RecSimCausal/Session-v0, got {env_cfg['id']}")
