"""The World: a structural causal model over users, items and responses, on batches of users.

    world = World.from_preset("default", n_items=100, seed=0)
    users = world.sample_users(4096, rng)          # observed + latent variables + exogenous noise
    x = world.observe(users)                       # (n, obs_dim) what agents see
    q = world.expected_reward(users)               # (n, K) exact E[r | x, do(a)] for every item
    out = world.respond(users, actions)            # outcomes of the chosen items (deterministic given users)
    world.do(click=1.0)                            # intervention: a new World with click fixed
    world.counterfactual(users, other_actions)     # same users, same noise, other actions

All exogenous noise is drawn in ``sample_users`` and kept in ``Users``, response noise included
(one uniform per user and slot), so ``respond`` is a deterministic function of the users and
the actions and the counterfactual "same user, same noise, other action" is exact.

Backends. ``World(..., backend="torch", device="cuda")`` computes the same SCM with torch on
a device (``backend="numpy"``, the default, on the host): every array a World returns is of
its backend (``world.xp``, see ``recsim_causal.scm.backend``). Item values and the fixed
random parameters are drawn with numpy from the world seed whatever the backend, so two
worlds with the same seed and different backends are the same SCM; given the same users
(``world.adopt(users)`` moves a batch across), they give the same outputs.

Cost. The user x item values are factored (``PairValue``): the item side of each response is
computed once per world, the user side per batch. ``expected_reward`` is (n, K) (cost n x K);
``respond`` and ``expected_reward_at`` score only the chosen items (O(n (m + L)) whatever K);
``top_items`` finds the exact best items blockwise, a maximum inner product over the factors
when the reward is one monotone response, without an (n, K) array.
"""

from __future__ import annotations

import copy
import importlib.resources
import zlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping

import numpy as np

from recsim_causal.catalog import Catalog
from recsim_causal.config import check_integer, check_keys, check_memory
from recsim_causal.scm.backend import NUMPY64, get_backend
from recsim_causal.scm.dynamics import Dynamics
from recsim_causal.scm.mechanisms import (
    ITEM,
    PAIR,
    RESPONSE,
    USER,
    CatalogFeature,
    Constant,
    Normal,
    Response,
    SCMConfigError,
    build_mechanism,
)

# The presets and Hydra configs ship inside the package (conf/ installs as recsim_causal.conf).
CONF_DIR = Path(str(importlib.resources.files("recsim_causal.conf")))
ITEM_BYTES = 1024
TOP_LEVEL_KEYS = {"name", "description", "catalog", "nodes", "observed", "privileged", "reward", "slate", "dynamics",
                  "confounding_strength", "ope_logger"}
SLATE_MODELS = ("pbm", "cascade")


def plain(config: Any) -> Any:
    """A plain-Python copy of a config (OmegaConf containers included)."""
    try:
        from omegaconf import DictConfig, ListConfig, OmegaConf

        if isinstance(config, (DictConfig, ListConfig)):
            return OmegaConf.to_container(config, resolve=True)
    except ImportError:  # pragma: no cover - omegaconf is a dependency
        pass
    return copy.deepcopy(config)


def load_scm_config(scm: str | Mapping) -> dict:
    """An SCM config: a preset name (``conf/scm/<name>.yaml``), a YAML path, or a mapping."""
    if not isinstance(scm, str):
        return plain(scm)
    import yaml

    path = Path(scm)
    if path.suffix not in (".yaml", ".yml"):
        path = CONF_DIR / "scm" / f"{scm}.yaml"
    if not path.is_file():
        known = ", ".join(sorted(p.stem for p in (CONF_DIR / "scm").glob("*.yaml")))
        raise SCMConfigError(f"scm: unknown preset '{scm}' (known: {known})")
    return yaml.safe_load(path.read_text())


@dataclass
class Users:
    """A batch of n users: ``values`` of every user-level node (observed and latent), and the
    exogenous ``noise`` they were drawn with (additive noise of derived nodes; one uniform
    or normal per user and slot for each response)."""

    values: dict[str, Any]
    noise: dict[str, Any]
    n: int
    t: int = 0  # the world time they were drawn at (decisions before them): the world's state they meet

    def take(self, idx) -> "Users":
        """The users at ``idx`` (an index array or a slice)."""
        pick = lambda d: {k: v[idx] for k, v in d.items()}  # noqa: E731
        values = pick(self.values)
        return Users(values, pick(self.noise), len(next(iter(values.values()))) if values else 0, self.t)


@dataclass
class Outcome:
    """What the user did: ``reward`` (n,) (a slate's: summed over slots) and each response's
    outcome, (n,) or (n, L) for slates."""

    reward: Any
    responses: dict[str, Any] = field(default_factory=dict)
    slot_reward: Any = None  # (n, L) for slates: the reward of each slot
    expected_reward: Any = None  # (n,) for single items: the exact E[r | x, do(a)] of the items shown


def _check_magnitudes(obj: Any, where: str, dtype: np.dtype) -> None:
    """Every number of an SCM config must fit the world's dtype (``bias: 1e39`` is inf in float32,
    and its NaNs would surface later, blamed on an agent)."""
    if isinstance(obj, Mapping):
        for key, value in obj.items():
            _check_magnitudes(value, f"{where}.{key}", dtype)
    elif isinstance(obj, (list, tuple)):
        for i, value in enumerate(obj):
            _check_magnitudes(value, f"{where}[{i}]", dtype)
    elif isinstance(obj, (float, int)) and not isinstance(obj, bool) and dtype.kind == "f":
        limit = float(np.finfo(dtype).max)
        if abs(obj) > limit:
            raise SCMConfigError(f"{where}: {obj!r} does not fit {dtype.name} (env.dtype; at most {limit:.3g} in size)")


class World:
    """A structural causal model of users x items, validated on construction.

    Args:
        config: the SCM config (mapping or preset name; see conf/scm/*.yaml).
        n_items: K, the catalog size.
        seed: the world seed: catalog and fixed random parameters (users are drawn from the
            generator passed to ``sample_users``).
        slate_size: L, the number of items shown at once (1 = a single recommendation).
        dtype: float64 (exact) or float32 (fast; what the envs use by default).
        backend: "numpy" (the default) or "torch": the array library every array of this world
            belongs to (``self.xp``).
        device: the torch backend's device: "auto" (CUDA when present, else CPU), "cpu",
            "cuda[:i]" (a one-line error when CUDA is absent); the numpy backend takes None/"cpu".
        threads: the torch backend's intra-op threads on the CPU (default 1: torch's default of
            one per core runs many times slower when the cores are busy); None leaves torch's.
    """

    def __init__(self, config: str | Mapping, *, n_items: int = 100, seed: int = 0, slate_size: int = 1,
                 dtype: str | np.dtype = "float64", catalog: Catalog | None = None, backend: str = "numpy",
                 device: Any = None, threads: int | None = 1):
        cfg = load_scm_config(config)
        if not isinstance(cfg, dict):
            raise SCMConfigError(f"scm: expected a mapping, got {type(cfg).__name__}")
        check_keys(cfg, TOP_LEVEL_KEYS, "scm", SCMConfigError)
        check_integer(n_items, "env.n_items", 1, SCMConfigError)
        check_integer(seed, "env.world_seed", 0, SCMConfigError)
        _check_magnitudes(cfg, "scm", np.dtype(dtype))
        # The catalog's features and texts, and the item-level node values: ~1 KiB an item
        # at the presets' sizes. Refused before anything is allocated.
        check_memory(ITEM_BYTES * n_items, "env.n_items", f"a catalog of {n_items:,} items")
        if not isinstance(slate_size, int) or not 1 <= slate_size <= n_items:
            raise SCMConfigError(f"env.slate_size: expected an integer in [1, n_items={n_items}], got {slate_size!r}")
        self.config, self.n_items, self.seed, self.slate_size = cfg, n_items, seed, slate_size
        self.dtype = np.dtype(dtype)
        self.xp = get_backend(backend, device, self.dtype, threads)
        self.backend, self.device = self.xp.name, self.xp.device
        self.name = cfg.get("name", "custom")
        self.forced_action: np.ndarray | None = None
        self.intervened_user_nodes: tuple[str, ...] = ()  # set by do(): applied to existing users too
        cat_cfg = cfg.get("catalog") or {}
        if not isinstance(cat_cfg, dict):
            raise SCMConfigError(f"scm.catalog: expected a mapping, got {cat_cfg!r}")
        try:
            self.catalog = catalog or Catalog.generate(n_items, seed, **cat_cfg)
        except TypeError as e:
            raise SCMConfigError(f"scm.catalog: {e}") from None
        except ValueError as e:
            raise SCMConfigError(f"scm.{e}") from None
        self._build_graph(cfg.get("nodes"))
        self.dynamics = Dynamics(cfg.get("dynamics"), mech=self.mech, seed=seed, n_items=n_items)
        self.item_values = self._item_values(self.catalog, {})
        self.observed = self._node_list(cfg, "observed", required=True)
        self.privileged = self._node_list(cfg, "privileged", required=False)
        self.confounding_strength = self._scale_confounders(cfg.get("confounding_strength", 1.0))
        self.reward_weights = self._reward(cfg.get("reward", "click"))
        self._reward_needed = self._needed(self.reward_weights)  # the reward's responses and their gates
        self._build_slate(cfg.get("slate"))
        self._build_item_factors()

    # ------------------------------------------------------------------ construction

    @classmethod
    def from_preset(cls, name: str, **kw) -> "World":
        return cls(name, **kw)

    def _build_graph(self, nodes: Any) -> None:
        if not isinstance(nodes, dict) or not nodes:
            raise SCMConfigError("scm.nodes: expected a non-empty mapping of node name -> mechanism")
        for name in nodes:  # a name is a config path's last part and a column's name
            if not isinstance(name, str) or not name.isidentifier():
                raise SCMConfigError(f"scm.nodes: node name {name!r} is not a name (letters, digits and _, "
                                     "not starting with a digit)")
        self.mech = {
            name: build_mechanism(name, spec, f"scm.nodes.{name}",
                                  np.random.default_rng([self.seed, zlib.crc32(name.encode())]))
            for name, spec in nodes.items()
        }
        known = ", ".join(sorted(self.mech))
        for name, m in self.mech.items():
            for p in m.parents:
                if p not in self.mech:
                    field_ = "gate" if getattr(m, "gate", None) == p else "parents"
                    raise SCMConfigError(f"scm.nodes.{name}.{field_}: unknown node '{p}' (known: {known})")
        self.order = self._topological_order()
        for name in self.order:
            m = self.mech[name]
            if isinstance(m, CatalogFeature):
                m.item_array = m.bind(self.catalog)
            m.resolve(self.mech)
        self.user_nodes = [n for n in self.order if self.mech[n].level == USER]
        for level, count in ((USER, 4096), (ITEM, self.n_items)):  # a batch of users; the catalog
            widths = {n: self.mech[n].dim for n in self.order if self.mech[n].level == level}
            if widths:
                widest = max(widths, key=widths.get)
                check_memory(8.0 * count * sum(widths.values()), f"scm.nodes.{widest}.dim",
                             f"{count:,} {level}s x {sum(widths.values()):,} {level}-level columns")
        self.pair_nodes = [n for n in self.order if self.mech[n].level == PAIR]
        self.responses = [n for n in self.order if self.mech[n].level == RESPONSE]
        if not self.responses:
            raise SCMConfigError("scm.nodes: no response node (expected e.g. click: {type: bernoulli, ...})")

    def _topological_order(self) -> list[str]:
        order, state, stack = [], {}, []

        def visit(n: str) -> None:
            if state.get(n) == 2:
                return
            if state.get(n) == 1:
                cycle = stack[stack.index(n):] + [n]
                raise SCMConfigError(f"scm.nodes: cycle {' -> '.join(cycle)}")
            state[n] = 1
            stack.append(n)
            for p in self.mech[n].parents:
                visit(p)
            stack.pop()
            state[n] = 2
            order.append(n)

        for n in self.mech:
            visit(n)
        return order

    def _item_values(self, catalog: Catalog, offsets: dict[str, np.ndarray]) -> dict[str, Any]:
        """Item-level values of ``catalog`` (each node in ``offsets`` moved by its offset, its
        descendants recomputed), drawn and computed with numpy in float64 whatever the backend
        (the same world on every backend), then stored in the world's backend and dtype."""
        rng = np.random.default_rng([self.seed, 0x17E5])
        exact: dict[str, np.ndarray] = {}
        for name in self.order:
            m = self.mech[name]
            if m.level != ITEM:
                continue
            if isinstance(m, CatalogFeature):
                v = m.item_array if catalog is self.catalog else m.bind(catalog)
            elif m.exogenous:
                v = m.sample(self.n_items, rng, NUMPY64)
            else:
                v = m.compute({p: exact[p] for p in m.parents}, None, 0, self.n_items, NUMPY64)
            exact[name] = np.asarray(v, dtype=np.float64)
            if name in offsets:
                exact[name] = exact[name] + offsets[name]
        return {k: self.xp.asarray(np.ascontiguousarray(v, dtype=self.dtype)) for k, v in exact.items()}

    def _build_item_factors(self) -> None:
        """The item side ``[I, 1, v]`` (K, m+2) of each response's linear predictor, computed once
        (per state of the items when they move with time): a batch of users then only needs its
        user side (see ``PairValue``)."""
        self._item_factor = self._item_factors(self.item_values)
        self._no_items = {k: v[:0] for k, v in self.item_values.items()}
        self._item_cache: dict[Any, tuple[Catalog, dict, dict]] = {}

    def _item_factors(self, item_values: dict[str, Any]) -> dict[str, Any]:
        xp = self.xp
        no_users = {name: xp.zeros((0, self.mech[name].dim)) for name in self.user_nodes}
        values = self._pair_values({**item_values, **no_users}, 0, self.n_items)
        return {r: self.mech[r].linear_predictor(values, 0, self.n_items, xp).item_factor()
                for r in self.responses if not isinstance(self.mech[r], Constant)}

    # ------------------------------------------------------------------ time

    def _items_at(self, t: int) -> tuple[Catalog, dict[str, Any], dict[str, Any]]:
        """(catalogue, item values, item factors) at time t: the world's own when the items do
        not move, else computed from the dynamics (a few states cached)."""
        if not self.dynamics.moves_items:
            return self.catalog, self.item_values, self._item_factor
        offsets = self.dynamics.item_offsets(t)
        epoch = self.dynamics.epoch(t)
        key = (epoch, tuple((k, np.asarray(v).tobytes()) for k, v in sorted(offsets.items())))
        hit = self._item_cache.get(key)
        if hit is None:
            catalog = self.dynamics.catalog(t, self.catalog)
            values = self._item_values(catalog, offsets) if (epoch or offsets) else self.item_values
            factors = self._item_factors(values) if (epoch or offsets) else self._item_factor
            if len(self._item_cache) >= 8:
                self._item_cache.pop(next(iter(self._item_cache)))
            hit = self._item_cache[key] = (catalog, values, factors)
        return hit

    def catalog_at(self, t: int) -> Catalog:
        """The catalogue at time t (items replaced by churn; ``catalog`` is the one at t = 0)."""
        return self._items_at(t)[0]

    def item_values_at(self, t: int) -> dict[str, Any]:
        """Item-level node values at time t, (K, dim) each."""
        return self._items_at(t)[1]

    def change_points(self, horizon: int) -> list[int]:
        """The times in (0, horizon) where the world changes abruptly (empty when stationary)."""
        return self.dynamics.change_points(horizon)

    @property
    def is_stationary(self) -> bool:
        return self.dynamics.stationary

    def _scale_confounders(self, strength: Any) -> float:
        """``scm.confounding_strength``: multiplies the spread of every confounder (a latent
        normal node behind a privileged signal), so the signal tells the logger more and the
        confounder moves the outcome more, together. 1 leaves the config as written."""
        if isinstance(strength, bool) or not isinstance(strength, (int, float)) or not 0 < strength < float("inf"):
            raise SCMConfigError(f"scm.confounding_strength: expected a number > 0, got {strength!r}")
        if strength == 1:
            return 1.0
        if not self.confounders:
            raise SCMConfigError("scm.confounding_strength: this world has no confounder to scale (a latent user "
                                 "node that causes a privileged signal)")
        for name in self.confounders:
            m = self.mech[name]
            if isinstance(m, Normal):
                m.scale *= float(strength)
            elif not isinstance(m, Constant):  # a constant: fixed by an intervention, nothing to scale
                raise SCMConfigError(f"scm.confounding_strength: scales normal confounders; '{name}' is "
                                     f"{type(m).__name__.lower()}")
        return float(strength)

    def _node_list(self, cfg: dict, key: str, required: bool) -> list[str]:
        names = cfg.get(key, [] if not required else None)
        if not isinstance(names, list) or (required and not names):
            raise SCMConfigError(f"scm.{key}: expected a {'non-empty ' if required else ''}list of user node names, got {names!r}")
        users = ", ".join(self.user_nodes)
        for n in names:
            if n not in self.mech:
                raise SCMConfigError(f"scm.{key}: unknown node '{n}' (user nodes: {users})")
            if self.mech[n].level != USER:
                raise SCMConfigError(f"scm.{key}: '{n}' is a {self.mech[n].level} node; only user nodes can be "
                                     f"observed (user nodes: {users})")
        twice = sorted({n for n in names if names.count(n) > 1})
        if twice:
            raise SCMConfigError(f"scm.{key}: '{twice[0]}' is listed twice")
        return list(names)

    def _reward(self, reward: Any) -> dict[str, float]:
        weights = {reward: 1.0} if isinstance(reward, str) else reward
        if not isinstance(weights, dict) or not weights:
            raise SCMConfigError(f"scm.reward: expected a response name or a mapping name -> weight, got {reward!r}")
        for r, w in weights.items():
            if r not in self.responses:
                raise SCMConfigError(f"scm.reward: '{r}' is not a response node (responses: {', '.join(self.responses)})")
            if not isinstance(w, (int, float)) or not np.isfinite(w):
                raise SCMConfigError(f"scm.reward.{r}: expected a finite weight, got {w!r}")
        return {r: float(w) for r, w in weights.items()}

    def _build_slate(self, slate: Any) -> None:
        slate = slate or {}
        if not isinstance(slate, dict):
            raise SCMConfigError(f"scm.slate: expected a mapping, got {slate!r}")
        self.slate_model = slate.get("model", "pbm")
        if self.slate_model not in SLATE_MODELS:
            raise SCMConfigError(f"scm.slate.model: expected one of {', '.join(SLATE_MODELS)}, got {self.slate_model!r}")
        exam = slate.get("examination", [1.0])
        exam = [exam] if isinstance(exam, (int, float)) else exam
        if not isinstance(exam, list) or not exam or not all(isinstance(e, (int, float)) and 0 <= e <= 1 for e in exam):
            raise SCMConfigError(f"scm.slate.examination: expected probabilities in [0, 1] by position, got {exam!r}")
        if self.slate_size > 1 and len(exam) not in (1, self.slate_size) and len(exam) < self.slate_size:
            raise SCMConfigError(f"scm.slate.examination: expected {self.slate_size} positions (slate_size), got {len(exam)}")
        exam = np.asarray(exam, float)
        self.examination = self.xp.asarray(np.full(self.slate_size, exam[0]) if exam.size == 1 and self.slate_size > 1
                                           else exam[: self.slate_size])

    # ------------------------------------------------------------------ properties

    @property
    def obs_dim(self) -> int:
        return sum(self.mech[n].dim for n in self.observed)

    def observation_bounds(self, names: list[str] | None = None) -> tuple[np.ndarray, np.ndarray]:
        """Per-column (low, high) of ``observe``: honest bounds from each node's mechanism."""
        lows, highs = [], []
        for n in names or self.observed:
            lo, hi = self.mech[n].bounds()
            lows += [lo] * self.mech[n].dim
            highs += [hi] * self.mech[n].dim
        return np.asarray(lows, np.float32), np.asarray(highs, np.float32)

    @property
    def is_confounded(self) -> bool:
        """True when a latent user variable drives a privileged signal: a logging policy that
        sees the signal (absent from the logged context) confounds its logs."""
        return bool(self.confounders)

    @property
    def confounders(self) -> list[str]:
        """Latent user nodes that are causes of a privileged signal."""
        ancestors, todo = set(), list(self.privileged)
        while todo:
            for p in self.mech[todo.pop()].parents:
                if p not in ancestors:
                    ancestors.add(p)
                    todo.append(p)
        return [n for n in self.latent_nodes if n in ancestors]

    @property
    def latent_nodes(self) -> list[str]:
        """User nodes that agents do not observe (and that are not states)."""
        return [n for n in self.user_nodes if n not in self.observed and n not in self.privileged
                and type(self.mech[n]).__name__ != "State"]

    # ------------------------------------------------------------------ sampling

    def sample_users(self, n: int, rng: Any, t: int = 0) -> Users:
        """Draw n users: every user-level node in causal order, plus all exogenous noise.

        ``rng``: a numpy Generator (any backend) or, on the torch backend, a torch.Generator
        on the world's device. ``t``: the world time (decisions before these users) whose
        population they come from and whose items they meet (see ``scm.dynamics``)."""
        g = self.xp.generator(rng)
        values: dict[str, Any] = {}
        noise: dict[str, Any] = {}
        offsets = self._user_offsets(t)
        for name in self.user_nodes:
            m = self.mech[name]
            if m.exogenous:
                values[name] = m.sample(n, g, self.xp)
            else:
                if m.noise_dim:
                    noise[name] = self.xp.standard_normal(g, (n, m.noise_dim))
                values[name] = m.compute(values, noise.get(name), n, self.n_items, self.xp)
            if name in offsets:
                values[name] = values[name] + offsets[name]
        self._draw_response_noise(noise, n, g)
        return Users(values, noise, n, int(t))

    def _user_offsets(self, t: int) -> dict[str, Any]:
        if not self.dynamics.user_shifts:
            return {}
        return {k: self.xp.asarray(v.astype(self.dtype)) for k, v in self.dynamics.user_offsets(t).items()}

    def _draw_response_noise(self, noise: dict, n: int, g: Any) -> None:
        for r in self.responses:
            kind = getattr(self.mech[r], "noise_kind", "uniform")
            shape = (n, self.slate_size)
            noise[r] = self.xp.random(g, shape) if kind == "uniform" else self.xp.standard_normal(g, shape)

    def redraw_response_noise(self, users: Users, rng: Any) -> None:
        """Fresh response noise for the same users (a new step of a session), in place."""
        self._draw_response_noise(users.noise, users.n, self.xp.generator(rng))

    def adopt(self, users: Users) -> Users:
        """The same users (values and kept noise) as arrays of this world's backend and dtype,
        e.g. users drawn by a numpy world, to replay them in a torch world."""
        def move(arrays: dict[str, Any]) -> dict[str, Any]:
            host = lambda v: v.detach().cpu().numpy() if hasattr(v, "detach") else v  # noqa: E731 (a tensor elsewhere)
            return {k: self.xp.asarray(v if self.xp.is_array(v) else host(v)) for k, v in arrays.items()}

        return Users(move(users.values), move(users.noise), users.n)

    def recompute(self, users: Users) -> None:
        """Recompute derived user nodes from their parents and kept noise, in place (after an
        environment changed a state or a feature, e.g. interest drift in a session)."""
        offsets = self._user_offsets(users.t)
        for name in self.user_nodes:
            m = self.mech[name]
            if not m.exogenous:
                users.values[name] = m.compute(users.values, users.noise.get(name), users.n, self.n_items, self.xp)
                if name in offsets:
                    users.values[name] = users.values[name] + offsets[name]

    def observe(self, users: Users, *, privileged: bool = False) -> Any:
        """What agents see: the observed nodes' values, (n, obs_dim) float32 (plus the privileged
        signal columns when ``privileged``)."""
        names = self.observed + (self.privileged if privileged else [])
        values = self._user_values(users)
        return self.xp.astype(self.xp.concat([values[n] for n in names], axis=1), self.xp.float32)

    def _user_values(self, users: Users) -> dict[str, Any]:
        """The users' values under this world's interventions on user-level nodes
        (abduction-action-prediction): each user keeps its exogenous noise, every intervened
        node takes its new value and its descendants are recomputed; other nodes as sampled."""
        if not self.intervened_user_nodes:
            return users.values
        values, changed = dict(users.values), set()
        offsets = self._user_offsets(users.t)
        for name in self.user_nodes:
            m = self.mech[name]
            if name in self.intervened_user_nodes and isinstance(m, Constant):
                values[name] = m.sample(users.n, None, self.xp)
            elif not m.exogenous and (name in self.intervened_user_nodes or changed.intersection(m.parents)):
                values[name] = m.compute(values, users.noise.get(name), users.n, self.n_items, self.xp)
                if name in offsets:
                    values[name] = values[name] + offsets[name]
            else:
                continue
            changed.add(name)
        return values

    # ------------------------------------------------------------------ responses

    def _pair_values(self, values: dict[str, Any], n: int, n_items: int) -> dict[str, Any]:
        """``values`` plus every user_item node's PairValue, for n users and n_items items."""
        values = dict(values)
        for name in self.pair_nodes:
            m = self.mech[name]
            values[name] = (m.pair_value(n, n_items, self.xp) if isinstance(m, Constant)
                            else m.compute(values, None, n, n_items, self.xp))
        return values

    def _user_factors(self, users: Users, names: list[str]) -> dict[str, Any]:
        """The user side ``[U, u, 1]`` (n, m+2) of each response's linear predictor: computed
        against zero items (the item side is the world's, ``_item_factor``)."""
        values = self._pair_values({**self._no_items, **self._user_values(users)}, users.n, 0)
        return {r: self.mech[r].linear_predictor(values, users.n, 0, self.xp).user_factor()
                for r in names if not isinstance(self.mech[r], Constant)}

    def conditional_means(self, users: Users, names: list[str] | None = None) -> dict[str, Any]:
        """Each response's mean given its gate fired, (n, K): P(click), P(purchase | click), ..."""
        names = names or self._reward_needed
        factors = self._user_factors(users, names)
        item_factor = self._items_at(users.t)[2]
        out = {}
        for r in names:
            m = self.mech[r]
            if isinstance(m, Constant):
                out[r] = self.xp.full((users.n, self.n_items), m.value[0])
            else:
                out[r] = m.expected(self.xp.matmul_t(factors[r], item_factor[r]), self.xp)
        return out

    def _needed(self, names) -> list[str]:
        """The responses ``names`` and their gates, in causal order."""
        need, todo = set(), list(names)
        while todo:
            r = todo.pop()
            if r not in need:
                need.add(r)
                g = getattr(self.mech[r], "gate", None)
                if g is not None:
                    todo.append(g)
        return [r for r in self.responses if r in need]

    def response_means(self, users: Users, cond_means: dict | None = None) -> dict[str, Any]:
        """Each response's unconditional mean E[response | x, do(a)] for every item, (n, K)."""
        return self._gated(cond_means or self.conditional_means(users, self._reward_needed))

    def _reward_of(self, means: dict[str, Any]) -> Any:
        """sum_r w_r * means[r] over the reward's responses."""
        reward = None
        for r, w in self.reward_weights.items():
            term = means[r] if w == 1.0 else w * means[r]
            reward = term if reward is None else reward + term
        return reward

    def expected_reward(self, users: Users, cond_means: dict | None = None) -> Any:
        """Exact E[r | all user variables, latent included, do(a)] for every item a, (n, K): the
        expectation is over the response noise only (an item shown alone, or in the top slot of
        a slate). Averaged over users it is V(pi) = E_x sum_a pi(a|x) E[r | x, do(a)]. Under a
        world from ``do()`` on user-level nodes it is the counterfactual for these same users.
        ``cond_means`` (from ``conditional_means``) skips recomputation."""
        return self._reward_of(self.response_means(users, cond_means))

    def expected_reward_at(self, users: Users, actions: Any, cond_means: dict | None = None) -> Any:
        """Exact E[r | x, do(a)] of the given items only: actions (n,) -> (n,), (n, L) -> (n, L)
        (each item as if shown alone). Costs O(n (m + L)), whatever K."""
        actions = self._check_actions(actions, users.n)
        return self._reward_of(self._gated(self._cond_at(users, actions, cond_means)))

    def top_items(self, users: Users, k: int = 1, *, block_size: int | None = None) -> tuple[Any, Any]:
        """The k items of highest E[r | x, do(a)] per user, best first: (values (n, k), items (n, k)).

        Exact, computed over blocks of items (``block_size`` items at a time; by default about
        2^22 user x item values per block) so that no (n, K) array is ever held. When the
        reward is one response with a monotone mean (a Bernoulli click or a lognormal amount,
        weight > 0, no gate), the ranking is that of the linear predictor: each block is one
        product of the factors (a maximum inner product search) and the mean is taken of the k
        winners only.
        """
        xp, n, K = self.xp, users.n, self.n_items
        if not 1 <= k <= K:
            raise ValueError(f"k: expected an integer in [1, n_items={K}], got {k!r}")
        block = block_size or max(k, min(K, (1 << 22) // max(n, 1)))
        needed = self._reward_needed
        r0, w0 = next(iter(self.reward_weights.items()))
        mips = (needed == [r0] and w0 > 0 and not isinstance(self.mech[r0], Constant)
                and getattr(self.mech[r0], "monotone", False))
        factors = self._user_factors(users, needed)
        item_factor = self._items_at(users.t)[2]
        best_v = best_i = None
        for lo in range(0, K, block):
            hi = min(K, lo + block)
            if mips:
                score = xp.matmul_t(factors[r0], item_factor[r0][lo:hi])
            else:
                cond = {}
                for r in needed:
                    m = self.mech[r]
                    cond[r] = (xp.full((n, hi - lo), m.value[0]) if isinstance(m, Constant) else
                               m.expected(xp.matmul_t(factors[r], item_factor[r][lo:hi]), xp))
                score = self._reward_of(self._gated(cond))
            v, i = xp.topk(score, min(k, hi - lo))
            i = i + lo
            if best_v is None:
                best_v, best_i = v, i
            else:
                best_v, pick = xp.topk(xp.concat([best_v, v], axis=1), min(k, best_v.shape[1] + v.shape[1]))
                best_i = xp.take_along(xp.concat([best_i, i], axis=1), pick)
        if mips:
            best_v = w0 * self.mech[r0].expected(best_v, xp)
        return best_v, best_i

    def _gated(self, cond: dict[str, Any]) -> dict[str, Any]:
        """Unconditional means from conditional ones: each response times its gate's mean."""
        means = {}
        for r in self._reward_needed:
            g = getattr(self.mech[r], "gate", None)
            means[r] = cond[r] * means[g] if g is not None else cond[r]
        return means

    def _cond_at(self, users: Users, actions: Any, cond: dict | None) -> dict[str, Any]:
        names = self._reward_needed
        if cond is not None:
            return {r: self.xp.take_along(cond[r], actions) for r in names}
        factors = self._user_factors(users, names)
        item_factor = self._items_at(users.t)[2]
        out = {}
        for r in names:
            m = self.mech[r]
            out[r] = (self.xp.full(tuple(actions.shape), m.value[0]) if isinstance(m, Constant)
                      else m.expected(self.xp.rowdot(factors[r], item_factor[r][actions]), self.xp))
        return out

    def respond(self, users: Users, actions: Any, *, cond_means: dict | None = None) -> Outcome:
        """The outcomes of showing ``actions`` ((n,) items or (n, L) slates) to ``users``.

        Deterministic given ``users`` (their kept noise): calling it again with other actions is
        the counterfactual. ``cond_means`` (from ``conditional_means``) skips recomputation.
        """
        actions = self._check_actions(actions, users.n)
        slate = actions.ndim == 2
        xp = self.xp
        p = self._cond_at(users, actions, cond_means)
        outcomes: dict[str, Any] = {}
        for r in p:
            m = self.mech[r]
            u = users.noise[r] if slate else users.noise[r][:, 0]
            g = getattr(m, "gate", None)
            if getattr(m, "noise_kind", "uniform") == "uniform":
                prob = p[r] * self.examination if (slate and g is None) else p[r]
                hit = xp.astype(u < prob)
                if slate and g is None and self.slate_model == "cascade":
                    hit = hit * self._not_stopped(hit)  # the user scans top-down and stops after the first hit
                outcomes[r] = hit
            else:  # a continuous amount: the response draws it from its mean and the kept normal noise
                outcomes[r] = m.draw(p[r], u, xp)
            if g is not None:
                outcomes[r] = outcomes[r] * outcomes[g]
        reward = xp.astype(sum(w * outcomes[r] for r, w in self.reward_weights.items()))
        if slate:
            return Outcome(reward.sum(axis=1), outcomes, slot_reward=reward)
        return Outcome(reward, outcomes, expected_reward=self._reward_of(self._gated(p)))

    def counterfactual(self, users: Users, actions: np.ndarray) -> Outcome:
        """The outcome for the same users under the same exogenous noise and other actions
        (``respond`` is deterministic given the users, so this is ``respond`` under a new name)."""
        return self.respond(users, actions)

    def _not_stopped(self, hit: Any) -> Any:
        """(n, L): 1 where no slot above was hit (under cascade the user stops at the first hit)."""
        return self.xp.cumprod(self.xp.concat([self.xp.ones((hit.shape[0], 1)), 1 - hit[:, :-1]], axis=1), axis=1)

    def expected_slate_reward(self, users: Users, slates: Any) -> Any:
        """Exact expected reward per slot of each slate, (n, L), under the slate click model."""
        slates = self._check_actions(slates, users.n)
        if slates.ndim == 1:
            slates = slates[:, None]
        cond = self._cond_at(users, slates, None)
        means: dict[str, Any] = {}
        for r, c in cond.items():
            g = getattr(self.mech[r], "gate", None)
            if g is not None:
                means[r] = c * means[g]
            else:
                means[r] = c * self.examination[: c.shape[1]]
                if self.slate_model == "cascade":  # reached slot j only if no hit above it
                    means[r] = means[r] * self._not_stopped(means[r])
        return sum(w * means[r] for r, w in self.reward_weights.items())

    def expected_slot_rewards(self, users: Users) -> Any:
        """Exact E[r_l | x, item a at slot l] for every item a and slot l < slate_size, (n, K, L),
        under the position-based model (``scm.slate.model: pbm``), where a slot's expected
        reward depends on its own item and position only: each response without a gate is
        its mean times examination[l], a gated one its mean times its gate's, as in
        :meth:`expected_slate_reward`. So E[sum_l r_l | x, do(s)] = sum_l out[:, s_l, l], and a
        slate policy's value is sum_{a, l} P(a at l | x) out[:, a, l]. Under the cascade a
        slot's reward depends on the items above it: a ValueError."""
        if self.slate_model != "pbm":
            raise ValueError(f"expected_slot_rewards: needs the position-based model (scm.slate.model: pbm), "
                             f"got {self.slate_model!r} (there a slot's reward depends on the items above)")
        # every response's mean carries examination[l] once (through its root gate), and the
        # reward is linear in them: the slot reward is the item's expected reward times it
        return self.expected_reward(users)[:, :, None] * self.examination[None, None, :]

    def _check_actions(self, actions: Any, n: int) -> Any:
        if self.forced_action is not None:
            forced = np.broadcast_to(self.forced_action, (n, *self.forced_action.shape)).reshape(
                (n,) if self.forced_action.ndim == 0 else (n, -1))
            return self.xp.as_index(forced)
        actions = self.xp.as_index(actions)
        if actions.ndim not in (1, 2) or actions.shape[0] != n:
            raise ValueError(f"actions: expected shape ({n},) or ({n}, L), got {tuple(actions.shape)}")
        if actions.numel() if self.xp.is_torch else actions.size:
            lo, hi = self.xp.min_max(actions)
            if lo < 0 or hi >= self.n_items:
                raise ValueError(f"actions: expected item indices in [0, {self.n_items}), got values in [{lo}, {hi}]")
        return actions

    # ------------------------------------------------------------------ interventions

    def do(self, fixed: Mapping[str, Any] | None = None, *, action: int | list[int] | None = None,
           mechanisms: Mapping[str, Mapping] | None = None, **kw_fixed: Any) -> "World":
        """A new World under an intervention (this one is unchanged).

        ``do(click=1.0)`` / ``do({"price_sensitivity": 0.0})`` fixes variables (a response fixed
        to p has P(r = 1) = p); ``mechanisms={"affinity": {...}}`` replaces mechanisms;
        ``action=a`` forces the recommended item (or slate) whatever the policy chooses.
        Fixed random parameters of the other nodes, and the catalog, are kept.

        Interventions on user-level nodes act on users sampled before the intervention too
        (abduction-action-prediction): ``world.do(activity=1.0).expected_reward(users)`` keeps
        each user's exogenous noise, sets activity to 1 and recomputes its descendants, so it
        is the counterfactual for those same users. A replaced user-level mechanism is
        recomputed from its parents and the user's kept noise (an exogenous replacement keeps
        the sampled value: its noise is the value).
        """
        cfg = copy.deepcopy(self.config)
        fixed = {**(fixed or {}), **kw_fixed}
        known = ", ".join(sorted(self.mech))
        for name, value in fixed.items():
            if name not in self.mech:
                raise SCMConfigError(f"do: unknown node '{name}' (known: {known})")
            m = self.mech[name]
            cfg["nodes"][name] = {"type": "constant", "level": m.level, "dim": m.dim,
                                  "value": np.asarray(value, float).tolist()}
        for name, spec in (mechanisms or {}).items():
            if name not in self.mech:
                raise SCMConfigError(f"do.mechanisms: unknown node '{name}' (known: {known})")
            cfg["nodes"][name] = plain(spec)
        world = World(cfg, n_items=self.n_items, seed=self.seed, slate_size=self.slate_size,
                      dtype=self.dtype, catalog=self.catalog, backend=self.backend, device=self.device)
        touched = set(self.intervened_user_nodes) | set(fixed) | set(mechanisms or {})
        world.intervened_user_nodes = tuple(n for n in world.user_nodes if n in touched)
        if action is not None:
            a = np.asarray(action, dtype=np.int64)
            if a.min() < 0 or a.max() >= self.n_items:
                raise SCMConfigError(f"do.action: expected item indices in [0, {self.n_items}), got {action!r}")
            world.forced_action = a
        else:
            world.forced_action = self.forced_action
        return world

    def __repr__(self) -> str:
        backend = "" if self.backend == "numpy" else f", backend='torch', device='{self.device}'"
        return (f"World(name={self.name!r}, n_items={self.n_items}, obs_dim={self.obs_dim}, "
                f"slate_size={self.slate_size}, nodes={len(self.mech)}{backend})")
