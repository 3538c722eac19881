"""Gymnasium environments over a World, registered on ``import recsim_causal.envs``:

* ``RecSimCausal/Bandit-v0``: one user, one decision (an item, or a slate when slate_size > 1);
* ``RecSimCausal/Session-v0``: a session of several steps; the user's state evolves and the user may leave.

``gym.make(id, **kw)`` gives the single env, and
``gym.make_vec(id, num_envs=N, vectorization_mode="vector_entry_point", **kw)`` the native
batch implementation. Keyword arguments mirror the Hydra env config: n_items, slate_size,
scm (preset name, YAML path or mapping), world_seed, dtype, and Session-v0's dynamics; plus
backend ("numpy" | "torch"), device (torch's: "auto", "cpu", "cuda[:i]") and oracle
("full" | "chosen" | "best"), see ``recsim_causal.envs.common``.
"""

import gymnasium as gym

from recsim_causal.envs.bandit import BanditEnv, BanditVectorEnv
from recsim_causal.envs.session import SessionEnv, SessionVectorEnv

BANDIT_ID = "RecSimCausal/Bandit-v0"
SESSION_ID = "RecSimCausal/Session-v0"

for _id, _single, _vector in (
    (BANDIT_ID, "recsim_causal.envs.bandit:BanditEnv", "recsim_causal.envs.bandit:BanditVectorEnv"),
    (SESSION_ID, "recsim_causal.envs.session:SessionEnv", "recsim_causal.envs.session:SessionVectorEnv"),
):
    if _id not in gym.registry:
        gym.register(id=_id, entry_point=_single, vector_entry_point=_vector, disable_env_checker=True)

__all__ = ["BANDIT_ID", "SESSION_ID", "BanditEnv", "BanditVectorEnv", "SessionEnv", "SessionVectorEnv"]
