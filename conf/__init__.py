"""Hydra configs and SCM presets, shipped inside the package (``pkg://recsim_causal.conf``)."""
