"""Build worlds and agents from names, mappings and objects: the one place that does.

Agents (loggers, targets, compared policies) are given as

- a **name**: an option of the ``agent`` config group, looked up in the given ``config_dir``
  (your ``my_conf/agent/<name>.yaml``), then in Hydra's search path when a Hydra app is
  running (so ``--config-dir`` works in every experiment), then in the package's conf/agent/;
- a **mapping** with ``_target_`` (a Policy class) and its parameters, plus an optional
  ``name`` (the label it gets in tables); or
- a **Policy object** (anything with ``action_probs``/``act``/``update``), used as it is.

:func:`resolve_agents` turns a list of such specs into ``{label: spec}`` and refuses two specs
with the same label in one line naming both (they are never merged). :func:`make_agent`
instantiates a config with the world's sizes. :func:`make_world` builds the World of an
``scm`` + ``env`` config (:func:`one_item_world`: one that serves one item per round).

The OPE experiments share the rest of their config through here: :func:`check_ope_config`
(rounds, logger, targets, intervals), :func:`make_estimators` (the ``estimators`` mapping and
``use``) and :func:`reward_model_q_hat` (the cross-fitted reward model of ``reward_model``;
``bert``: the text-aware click model, its settings built by :func:`ctr_config`).
Errors are plain parameter errors; callers pass ``where`` (the config path, e.g.
``experiment.targets``) to have it named.
"""

from __future__ import annotations

import inspect
import re
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from recsim_causal.config import check_integer, check_keys
from recsim_causal.scm import World
from recsim_causal.scm.world import CONF_DIR

__all__ = ["agent_config", "agent_label", "is_policy", "make_agent", "make_world", "resolve_agents", "world_from_config",
           "one_item_world", "session_world", "session_dynamics", "session_env", "check_ope_config", "make_estimators", "reward_model_q_hat", "ctr_config"]


def is_policy(obj: Any) -> bool:
    """An object that honours the Policy contract (action_probs, act, update)."""
    return all(callable(getattr(obj, m, None)) for m in ("action_probs", "act", "update"))


def _hydra_agent(name: str) -> dict | None:
    """The agent group option ``name`` through a running Hydra app's search path (``--config-dir``)."""
    try:
        from hydra.core.global_hydra import GlobalHydra
    except ImportError:  # pragma: no cover - hydra is a dependency
        return None
    if not GlobalHydra.instance().is_initialized():
        return None
    from hydra import compose
    from omegaconf import OmegaConf

    try:
        return OmegaConf.to_container(compose(config_name="config", overrides=[f"agent={name}"]).agent, resolve=True)
    except Exception:  # not in the search path: the package's list gives the error with the known names
        return None


def agent_config(spec: str | Mapping, *, config_dir: str | Path | None = None, where: str = "agent") -> dict:
    """An agent config (a dict with ``_target_``) from a name or a mapping (see the module doc)."""
    if isinstance(spec, Mapping):
        cfg = dict(spec)
        if not cfg.get("_target_"):
            raise ValueError(f"{where}._target_: missing (expected a Policy class, e.g. recsim_causal.agents.LinUCB)")
        return cfg
    if not isinstance(spec, str):
        raise ValueError(f"{where}: expected an agent name, a mapping with _target_ or a Policy, got {spec!r}")
    from omegaconf import OmegaConf

    dirs = [Path(config_dir) / "agent"] if config_dir is not None else []
    for d in dirs:
        if (d / f"{spec}.yaml").is_file():
            return OmegaConf.to_container(OmegaConf.load(d / f"{spec}.yaml"), resolve=True)
    found = _hydra_agent(spec)
    if found is not None:
        return found
    path = CONF_DIR / "agent" / f"{spec}.yaml"
    if not path.is_file():
        known = sorted({p.stem for d in [*dirs, CONF_DIR / "agent"] for p in d.glob("*.yaml")})
        raise ValueError(f"{where}: unknown agent '{spec}' (known: {', '.join(known)})")
    return OmegaConf.to_container(OmegaConf.load(path), resolve=True)


def agent_label(spec: Any) -> str:
    """A spec's label: its name; a mapping's ``name``, else ``Class(param=value, ...)``; a
    Policy's ``name`` attribute, else its class name."""
    if isinstance(spec, str):
        return spec
    if isinstance(spec, Mapping):
        if spec.get("name"):
            return str(spec["name"])
        params = ",".join(f"{k}={v}" for k, v in spec.items() if k not in ("_target_", "name"))
        return str(spec.get("_target_", "agent")).rsplit(".", 1)[-1] + (f"({params})" if params else "")
    return str(getattr(spec, "name", None) or type(spec).__name__)


def resolve_agents(specs: Sequence, *, where: str = "targets", config_dir: str | Path | None = None
                   ) -> dict[str, Any]:
    """``{label: agent config or Policy}`` for a list of specs (names, mappings, Policy objects).

    Names are looked up (:func:`agent_config`); a mapping's ``name`` becomes its label and is
    dropped from the config. Two specs with one label are refused, naming both. A mapping of
    labels to specs (``{"mine": policy, "base": "random"}``) keeps its labels."""
    if isinstance(specs, Mapping) and "_target_" not in specs:  # {label: spec}
        return {str(label): spec if is_policy(spec) else
                {k: v for k, v in agent_config(spec, config_dir=config_dir, where=f"{where}.{label}").items()
                 if k != "name"}
                for label, spec in specs.items()}
    if isinstance(specs, (str, Mapping)) or is_policy(specs):
        specs = [specs]
    if not specs:
        raise ValueError(f"{where}: expected a non-empty list of agents")
    out: dict[str, Any] = {}
    first: dict[str, int] = {}
    for i, spec in enumerate(specs):
        if is_policy(spec):
            value = spec
        elif isinstance(spec, (str, Mapping)):
            value = agent_config(spec, config_dir=config_dir, where=f"{where}[{i}]")
            value = {k: v for k, v in value.items() if k != "name"}
        else:
            raise ValueError(f"{where}[{i}]: expected an agent name, a mapping with _target_ or a Policy, got {spec!r}")
        label = agent_label(spec)
        if label in out:
            raise ValueError(f"{where}: items {first[label]} and {i} are both labelled '{label}' "
                             "(give each its own name: {name: ..., _target_: ...})")
        out[label], first[label] = value, i
    return out


def make_agent(agent_cfg: Any, *, n_actions: int, dim: int, seed: int, world: World | None = None,
               where: str = "agent"):
    """Instantiate an agent config (``_target_`` + params) with the world's sizes: n_actions, dim,
    seed and, to agents that take them, the item texts of the catalog. A Policy object is
    returned as it is. One-line errors naming ``where``."""
    if is_policy(agent_cfg):
        return agent_cfg
    from hydra.errors import InstantiationException
    from hydra.utils import get_class, instantiate

    target = agent_cfg.get("_target_") if hasattr(agent_cfg, "get") else None
    if not target:
        raise ValueError(f"{where}._target_: missing (expected a Policy class, e.g. recsim_causal.agents.LinUCB)")
    try:
        cls = get_class(target)
    except Exception as e:
        raise ValueError(f"{where}._target_: cannot import '{target}' ({str(e).splitlines()[0]})") from None
    offered = {"n_actions": n_actions, "dim": dim, "seed": seed}
    if world is not None:
        offered["item_texts"] = world.catalog.texts
    params = inspect.signature(cls).parameters
    takes_any = any(p.kind == p.VAR_KEYWORD for p in params.values())
    if not takes_any:
        check_keys([k for k in agent_cfg if not str(k).startswith("_")], params, where)
    extra = {k: v for k, v in offered.items() if (k in params or takes_any) and k not in agent_cfg}
    try:
        return instantiate(agent_cfg, **extra)
    except InstantiationException as e:
        cause = e.__cause__ or e
        msg = str(cause).splitlines()[0] if str(cause) else type(cause).__name__
        if msg.split(":", 1)[0] in agent_cfg:  # the agent named one of its parameters: say its config path
            raise ValueError(f"{where}.{msg}") from None
        raise ValueError(f"{where} ({target}): {msg}") from None


def make_world(scm: str | Mapping | World = "default", *, n_items: int = 100, slate_size: int = 1,
               world_seed: int = 0, dtype: str = "float64") -> World:
    """A World from an SCM preset name or mapping (a World is returned as it is)."""
    if isinstance(scm, World):
        return scm
    return World(scm, n_items=n_items, seed=world_seed, slate_size=slate_size, dtype=dtype)


def world_from_config(resolved: Mapping, *, slate_size: int | None = None, dtype: str = "float64") -> World:
    """The World of a resolved run config (``scm`` + ``env``: n_items, world_seed, slate_size)."""
    env_cfg = resolved["env"]
    return make_world(resolved["scm"], n_items=env_cfg["n_items"], world_seed=env_cfg.get("world_seed", 0),
                      slate_size=env_cfg.get("slate_size", 1) if slate_size is None else slate_size, dtype=dtype)


def one_item_world(resolved: Mapping, experiment: str) -> World:
    """The World of a run config whose ``env`` serves one item per round (Bandit-v0, slate_size=1);
    anything else is refused in one line naming ``experiment``."""
    env_cfg = resolved["env"]
    if env_cfg["id"] != "RecSimCausal/Bandit-v0" or env_cfg.get("slate_size", 1) != 1:
        raise ValueError(f"env: experiment={experiment} needs one-item bandit rounds (Bandit-v0, slate_size=1), "
                         f"got {env_cfg['id']} with slate_size={env_cfg.get('slate_size', 1)}")
    return world_from_config(resolved, slate_size=1)


#: env config keys that are Session-v0's dynamics
SESSION_DYNAMICS_KEYS = ("max_steps", "drift", "fatigue_rate", "fatigue_decay", "satisfaction_rate", "leave_bias",
                         "leave_satisfaction")


def session_world(resolved: Mapping) -> World:
    """The World of a session run config (``scm`` + ``env``: n_items, world_seed, dtype)."""
    env_cfg = resolved["env"]
    return make_world(resolved["scm"], n_items=env_cfg.get("n_items", 100), world_seed=env_cfg.get("world_seed", 0),
                      dtype=env_cfg.get("dtype", "float32"))


def session_dynamics(resolved: Mapping) -> dict:
    """The Session-v0 dynamics given in ``resolved["env"]`` (:data:`SESSION_DYNAMICS_KEYS`)."""
    return {k: resolved["env"][k] for k in SESSION_DYNAMICS_KEYS if k in resolved["env"]}


def session_env(resolved: Mapping, num_envs: int):
    """The run's Session-v0 vector env: :func:`session_world` with :func:`session_dynamics`."""
    from recsim_causal.envs import SessionVectorEnv

    return SessionVectorEnv(num_envs, world=session_world(resolved), **session_dynamics(resolved))


def check_ope_config(exp: Mapping, where: str = "experiment") -> None:
    """The keys every simulated OPE run reads: rounds, the logger's epsilon, the targets and the
    interval methods (``stream_above`` and ``stream_fit_rows`` where given)."""
    from recsim_causal.ope.intervals import ci_methods

    for key in ("n_rounds", "train_rounds", "truth_users"):
        v = exp.get(key)
        if not isinstance(v, int) or isinstance(v, bool) or v <= 0:
            raise ValueError(f"{where}.{key}: expected an integer > 0, got {v!r}")
    eps = exp["logger"].get("epsilon", 0.0)
    if not isinstance(eps, (int, float)) or not 0 <= eps <= 1:
        raise ValueError(f"{where}.logger.epsilon: expected a number in [0, 1], got {eps!r}")
    if not exp.get("targets"):
        raise ValueError(f"{where}.targets: expected a non-empty list of agents")
    for key in ("stream_above", "stream_fit_rows"):
        if key in exp:
            check_integer(exp[key], f"{where}.{key}", minimum=1)
    ci_methods(exp["ci"], f"{where}.ci")


def make_estimators(cfg: Mapping, where: str = "experiment") -> dict:
    """``{name: estimator}`` from ``cfg["estimators"]`` (name -> mapping with ``_target_``), the
    ones listed in ``cfg["use"]`` (all when it is empty), each named by its key."""
    from hydra.utils import instantiate

    use = cfg.get("use") or list(cfg["estimators"])
    unknown = [u for u in use if u not in cfg["estimators"]]
    if unknown:
        raise ValueError(f"{where}.use: unknown estimator '{unknown[0]}' (known: {', '.join(cfg['estimators'])})")
    return {name: instantiate(cfg["estimators"][name], estimator_name=name) for name in use}


def ctr_config(settings: Mapping | None, *, where: str, **kw: Any):
    """A :class:`recsim_causal.ctr.CTRConfig` from a config section; errors name ``where``."""
    from recsim_causal.ctr import CTRConfig

    try:
        return CTRConfig.from_dict(settings, **kw)
    except ValueError as err:  # its own "ctr." / "ctr: " prefix gives way to the section's path
        raise ValueError(f"{where}: " + re.sub(r"^ctr(\.|: )", "", str(err))) from None


def reward_model_q_hat(feedback: Any, cfg: Mapping, seed: int, world: World | None = None,
                       groups: np.ndarray | None = None, where: str = "experiment") -> np.ndarray:
    """Cross-fitted q-hat ``(n_rounds, K, 1)`` of ``cfg["reward_model"]`` on a LoggedFeedback
    (``cfg``: ``reward_model``, ``reward_features``, ``n_folds``, and ``bert`` for the text-aware
    click model over the world's item texts). ``groups``: a bootstrap resample's original row
    indices, so that a row drawn twice stays in one fold."""
    from recsim_causal.ope.reward_models import fit_predict, reward_model_features

    if cfg["reward_model"] == "bert":
        from recsim_causal.ctr import fit_predict_ctr

        if world is None:
            raise ValueError(f"{where}.reward_model: 'bert' reads the item texts of a simulated world; "
                             f"external data ({where}.data) has none: use logistic, ridge or mlp")
        config = ctr_config(cfg.get("bert"), where=f"{where}.bert", model="bert", seed=seed)
        return fit_predict_ctr(feedback.context, feedback.action, feedback.reward, world.n_items,
                               item_texts=world.catalog.texts, n_folds=cfg["n_folds"], random_state=seed, config=config)
    features, action_context = reward_model_features(cfg.get("reward_features", "cross"), world)
    return fit_predict(feedback.context, feedback.action, feedback.reward, feedback.n_actions,
                       base_model=cfg["reward_model"], features=features, action_context=action_context,
                       n_folds=cfg["n_folds"], random_state=seed, groups=groups)
