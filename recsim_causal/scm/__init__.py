"""The structural causal model: mechanisms (a registry), the causal graph, and the World."""

from recsim_causal.scm.mechanisms import (
    MECHANISMS,
    Mechanism,
    PairValue,
    SCMConfigError,
    register_mechanism,
)
from recsim_causal.scm.world import Outcome, Users, World, load_scm_config

__all__ = [
    "MECHANISMS",
    "Mechanism",
    "Outcome",
    "PairValue",
    "SCMConfigError",
    "Users",
    "World",
    "load_scm_config",
    "register_mechanism",
]
