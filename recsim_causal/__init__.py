"""recsim-causal: a simulation lab for recommender policies over a structural causal model."""

from recsim_causal.catalog import Catalog
from recsim_causal.scm import SCMConfigError, Users, World

__version__ = "0.1.0"
__all__ = ["Catalog", "SCMConfigError", "Users", "World", "__version__"]
