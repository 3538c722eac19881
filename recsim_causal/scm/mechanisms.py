"""Mechanisms: the registry of node types an SCM config may use.

Every node of the causal graph has a *level*, which fixes the shape of its value for a batch
of n users and a catalog of K items:

  user       (n, d)      one value per user (exogenous features, latents, user-level states)
  item       (K, d)      one value per item (catalog features and functions of them)
  user_item  PairValue   one scalar per (user, item), kept in factored form (see below)
  response   outcome     Bernoulli / lognormal outcomes, drawn for the recommended items only

User x item values are never materialized as (n, K) until a response needs them: every
user_item mechanism here is bilinear in (user features, item features), so its value is a
``PairValue`` ``U @ I.T + u[:, None] + v[None, :]`` and a whole response logit is one matrix
product. That is what makes the batched world fast. The factored form also splits: the
user side ``[U, u, 1]`` is computed per batch of users, the item side ``[I, 1, v]`` once per
world, so a step that scores only the chosen items costs O(n (m + L)) whatever K is.

Every array operation goes through the world's backend ``xp`` (``recsim_causal.scm.backend``:
numpy, or torch on CPU threads or a GPU): ``sample(n, rng, xp)`` and ``compute(parents, noise,
n, n_items, xp)`` receive it, and a mechanism written with ``xp``'s operations runs on both.

A mechanism is declared in YAML as ``{type: NAME, parents: ..., <params>}`` or, for a user's
own mechanism, ``{_target_: my_pkg.MyMechanism, ...}`` (a subclass of ``Mechanism``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable

import numpy as np

from recsim_causal.config import check_integer, check_keys, check_memory
from recsim_causal.scm.backend import NUMPY64

USER, ITEM, PAIR, RESPONSE = "user", "item", "user_item", "response"


class SCMConfigError(ValueError):
    """A one-line error naming the config field that is wrong and what would be right."""


@dataclass
class PairValue:
    """A user x item value in factored form: ``U @ I.T + u[:, None] + v[None, :]``.

    U: (n, m), I: (K, m), u: (n,), v: (K,), arrays of the backend ``xp``.
    """

    U: Any
    I: Any
    u: Any
    v: Any
    xp: Any = NUMPY64

    @classmethod
    def from_user(cls, x, n_items: int, xp=NUMPY64) -> "PairValue":
        n = x.shape[0]
        return cls(xp.zeros((n, 0)), xp.zeros((n_items, 0)), x[:, 0], xp.zeros((n_items,)), xp)

    @classmethod
    def from_item(cls, y, n_users: int, xp=NUMPY64) -> "PairValue":
        k = y.shape[0]
        return cls(xp.zeros((n_users, 0)), xp.zeros((k, 0)), xp.zeros((n_users,)), y[:, 0], xp)

    def scaled(self, c: float) -> "PairValue":
        return PairValue(self.U * c, self.I, self.u * c, self.v * c, self.xp)

    def __add__(self, other: "PairValue") -> "PairValue":
        return PairValue(
            self.xp.concat([self.U, other.U], axis=1),
            self.xp.concat([self.I, other.I], axis=1),
            self.u + other.u,
            self.v + other.v,
            self.xp,
        )

    def user_factor(self):
        """(n, m+2): ``[U, u, 1]``, the user side of the dense value."""
        return self.xp.concat([self.U, self.u[:, None], self.xp.ones((self.U.shape[0], 1))], axis=1)

    def item_factor(self):
        """(K, m+2): ``[I, 1, v]``, the item side: ``user_factor() @ item_factor().T`` is the dense value."""
        return self.xp.concat([self.I, self.xp.ones((self.I.shape[0], 1)), self.v[:, None]], axis=1)

    def augmented(self) -> tuple[Any, Any]:
        """(n, m+2) and (K, m+2) factors whose product is the dense (n, K) value."""
        return self.user_factor(), self.item_factor()

    def dense(self):
        a, b = self.augmented()
        return self.xp.matmul_t(a, b)

    def at(self, actions):
        """The value at one item per user (actions (n,)) or per slot (actions (n, L)) -> same shape."""
        a, b = self.augmented()
        return self.xp.rowdot(a, b[actions])


def pair_sum(coefs: dict[str, Any], levels: dict[str, str], values: dict[str, Any], bias: float,
             n: int, n_items: int, xp=NUMPY64) -> PairValue:
    """``bias + sum_p coef_p * value_p`` over scalar user, item and user_item values, as a PairValue."""
    Us, Is = [xp.zeros((n, 0))], [xp.zeros((n_items, 0))]
    u, v = xp.full((n,), bias), xp.zeros((n_items,))
    for p, c in coefs.items():
        x, lvl, c = values[p], levels[p], float(np.asarray(c).ravel()[0])
        if lvl == USER:
            u += c * x[:, 0]
        elif lvl == ITEM:
            v += c * x[:, 0]
        else:
            Us.append(x.U * c)
            Is.append(x.I)
            u += c * x.u
            v += c * x.v
    return PairValue(xp.concat(Us, axis=1), xp.concat(Is, axis=1), u, v, xp)


# --------------------------------------------------------------------------- parameter checks


def _get(spec: dict, key: str, where: str, default: Any = ..., *, check: Callable[[Any], bool] | None = None,
         expect: str = "") -> Any:
    if key not in spec:
        if default is ...:
            raise SCMConfigError(f"{where}.{key}: missing (expected {expect or 'a value'})")
        return default
    value = spec[key]
    try:
        ok = check is None or check(value)
    except (TypeError, ValueError):
        ok = False
    if not ok:
        raise SCMConfigError(f"{where}.{key}: expected {expect}, got {value!r}")
    return value


def _is_number(x: Any) -> bool:
    return isinstance(x, (int, float, np.integer, np.floating)) and not isinstance(x, bool) and np.isfinite(x)


def _positive(x: Any) -> bool:
    return _is_number(x) and x > 0


def _nonneg(x: Any) -> bool:
    return _is_number(x) and x >= 0


def _dim(spec: dict, where: str, default: int = 1) -> int:
    return check_integer(spec.get("dim", default), f"{where}.dim", 1, SCMConfigError)


# --------------------------------------------------------------------------- base class


class Mechanism:
    """One node's mechanism. Subclasses set ``parents`` in ``__init__`` and implement ``resolve``.

    ``resolve(graph)`` is called in topological order with ``graph`` mapping every parent's
    name to its resolved mechanism (``.level``, ``.dim``); it validates shapes and sets
    ``self.level`` and ``self.dim``. ``rng`` is the world's parameter generator (for fixed
    random weights), derived from the world seed and the node name.
    """

    level: str
    dim: int = 1
    exogenous: bool = False  # value drawn directly (no parents): its draw is the node's noise
    noise_dim: int = 0       # extra per-user exogenous noise (e.g. additive noise), drawn at sampling

    #: The config keys this mechanism reads; any other key in its node is a one-line error.
    KEYS: frozenset[str] = frozenset({"type"})

    def __init__(self, name: str, spec: dict, where: str, rng: np.random.Generator):
        self.name, self.spec, self.where = name, spec, where
        self.parents: list[str] = []

    def resolve(self, graph: dict[str, "Mechanism"]) -> None:
        raise NotImplementedError

    def bounds(self) -> tuple[float, float]:
        """Range of the value (for honest observation spaces)."""
        return -np.inf, np.inf

    # user / item levels: value from parent values (+ kept noise). ``xp`` is the array backend
    # (recsim_causal.scm.backend: numpy or torch; ``xp.dtype`` the float dtype) and ``rng`` its generator.
    def sample(self, n: int, rng: Any, xp: Any) -> Any:
        raise NotImplementedError(f"{self.where}: {type(self).__name__} has no exogenous draw")

    def compute(self, parents: dict[str, Any], noise: Any, n: int, n_items: int, xp: Any) -> Any:
        raise NotImplementedError

    def _parent_list(self, spec: dict, *, exact: int | None = None) -> list[str]:
        parents = spec.get("parents", [])
        if isinstance(parents, dict):
            parents = list(parents)
        if not isinstance(parents, list) or not all(isinstance(p, str) for p in parents):
            raise SCMConfigError(f"{self.where}.parents: expected a list of node names, got {parents!r}")
        if exact is not None and len(parents) != exact:
            raise SCMConfigError(f"{self.where}.parents: expected {exact} parents, got {len(parents)}")
        return parents


MECHANISMS: dict[str, type[Mechanism]] = {}


def register_mechanism(name: str):
    """Class decorator: make a mechanism available as ``type: name`` in SCM configs."""

    def deco(cls: type[Mechanism]) -> type[Mechanism]:
        MECHANISMS[name] = cls
        cls.type_name = name
        return cls

    return deco


def combine_levels(levels: list[str]) -> str:
    s = set(levels)
    if PAIR in s or (USER in s and ITEM in s):
        return PAIR
    if USER in s:
        return USER
    return ITEM


# --------------------------------------------------------------------------- exogenous


class _Exogenous(Mechanism):
    exogenous = True

    KEYS = Mechanism.KEYS | {"level", "parents", "dim"}

    def __init__(self, name, spec, where, rng):
        super().__init__(name, spec, where, rng)
        self.level = _get(spec, "level", where, USER, check=lambda v: v in (USER, ITEM), expect="'user' or 'item'")
        if spec.get("parents"):
            raise SCMConfigError(f"{where}.parents: an exogenous '{spec.get('type')}' node takes no parents")
        self.dim = _dim(spec, where)  # item-level draws happen once, when the world is built

    def resolve(self, graph):
        pass

    def compute(self, parents, noise, n, n_items, xp):
        return noise


@register_mechanism("normal")
class Normal(_Exogenous):
    KEYS = _Exogenous.KEYS | {"loc", "scale"}

    def __init__(self, name, spec, where, rng):
        super().__init__(name, spec, where, rng)
        self.loc = float(_get(spec, "loc", where, 0.0, check=_is_number, expect="a number"))
        self.scale = float(_get(spec, "scale", where, 1.0, check=_positive, expect="a number > 0"))

    def sample(self, n, rng, xp):
        x = xp.standard_normal(rng, (n, self.dim))
        if self.scale != 1.0:
            x *= self.scale
        if self.loc != 0.0:
            x += self.loc
        return x


@register_mechanism("uniform")
class Uniform(_Exogenous):
    KEYS = _Exogenous.KEYS | {"low", "high"}

    def __init__(self, name, spec, where, rng):
        super().__init__(name, spec, where, rng)
        self.low = float(_get(spec, "low", where, 0.0, check=_is_number, expect="a number"))
        self.high = float(_get(spec, "high", where, 1.0, check=lambda h: _is_number(h) and h > self.low,
                               expect=f"a number > low ({self.low})"))

    def sample(self, n, rng, xp):
        return self.low + (self.high - self.low) * xp.random(rng, (n, self.dim))

    def bounds(self):
        return self.low, self.high


@register_mechanism("lognormal")
class LogNormal(_Exogenous):
    KEYS = _Exogenous.KEYS | {"mean", "sigma"}

    def __init__(self, name, spec, where, rng):
        super().__init__(name, spec, where, rng)
        self.mean = float(_get(spec, "mean", where, 0.0, check=_is_number, expect="a number"))
        self.sigma = float(_get(spec, "sigma", where, 1.0, check=_positive, expect="a number > 0"))

    def sample(self, n, rng, xp):
        return xp.exp(self.mean + self.sigma * xp.standard_normal(rng, (n, self.dim)))

    def bounds(self):
        return 0.0, np.inf


@register_mechanism("categorical")
class Categorical(_Exogenous):
    """One-hot draw from ``probs``: value (n, C)."""

    KEYS = _Exogenous.KEYS | {"probs"}

    def __init__(self, name, spec, where, rng):
        spec = {k: v for k, v in spec.items() if k != "dim"}
        super().__init__(name, spec, where, rng)
        probs = _get(spec, "probs", where, check=lambda p: isinstance(p, (list, tuple)) and len(p) >= 1
                     and all(_is_number(x) for x in p), expect="a list of probabilities")
        probs = np.asarray(probs, dtype=float)
        if np.any(probs < 0) or np.any(probs > 1):
            raise SCMConfigError(f"{where}.probs: every probability must be in [0, 1], got {probs.tolist()}")
        if abs(probs.sum() - 1.0) > 1e-6:
            raise SCMConfigError(f"{where}.probs: must sum to 1, got {probs.sum():.6g}")
        self.probs, self.dim = probs, len(probs)
        self._cdf = np.cumsum(probs)

    def sample(self, n, rng, xp):
        idx = xp.searchsorted(xp.param(self._cdf), xp.random(rng, (n,))).clip(0, self.dim - 1)
        return xp.one_hot(idx, self.dim)

    def bounds(self):
        return 0.0, 1.0


@register_mechanism("state")
class State(_Exogenous):
    """A user-level state, initialized to ``init`` (a number), evolved by an environment
    (e.g. the session env's fatigue). Not random: it has no noise of its own."""

    KEYS = _Exogenous.KEYS | {"init"}

    def __init__(self, name, spec, where, rng):
        super().__init__(name, spec, where, rng)
        if self.level != USER:
            raise SCMConfigError(f"{where}.level: a state node is per user, expected 'user'")
        self.init = float(_get(spec, "init", where, 0.0, check=_is_number, expect="a number"))

    def sample(self, n, rng, xp):
        return xp.full((n, self.dim), self.init)


@register_mechanism("catalog")
class CatalogFeature(Mechanism):
    """An item feature read from the catalog: ``{type: catalog, field: price}``."""

    exogenous = True

    KEYS = Mechanism.KEYS | {"field"}

    def __init__(self, name, spec, where, rng):
        super().__init__(name, spec, where, rng)
        self.level = ITEM
        self.field = _get(spec, "field", where, check=lambda f: isinstance(f, str), expect="a catalog field name")

    def bind(self, catalog) -> np.ndarray:
        if self.field not in catalog.features:
            known = ", ".join(sorted(catalog.features))
            raise SCMConfigError(f"{self.where}.field: unknown catalog field '{self.field}' (known: {known})")
        value = catalog.features[self.field]
        self.dim = value.shape[1]
        return value

    def resolve(self, graph):
        pass


@register_mechanism("constant")
class Constant(Mechanism):
    """A fixed value (what ``World.do(node=value)`` puts in a node's place)."""

    exogenous = True

    KEYS = Mechanism.KEYS | {"level", "value", "dim"}

    def __init__(self, name, spec, where, rng):
        super().__init__(name, spec, where, rng)
        self.level = _get(spec, "level", where, USER, check=lambda v: v in (USER, ITEM, PAIR, RESPONSE),
                          expect="one of user, item, user_item, response")
        value = np.atleast_1d(np.asarray(_get(spec, "value", where, expect="a number or list of numbers"), float))
        if not np.all(np.isfinite(value)):
            raise SCMConfigError(f"{where}.value: expected finite numbers, got {value.tolist()}")
        if self.level == RESPONSE and (value.size != 1 or not 0 <= value[0] <= 1):
            raise SCMConfigError(f"{where}.value: a response fixed by do() takes a probability in [0, 1], got {value.tolist()}")
        if self.level == PAIR and value.size != 1:
            raise SCMConfigError(f"{where}.value: a user_item node is a scalar, got {value.size} values")
        self.value = value
        self.dim = _dim(spec, where, value.size)
        if value.size not in (1, self.dim):
            raise SCMConfigError(f"{where}.value: expected 1 or {self.dim} values, got {value.size}")

    def resolve(self, graph):
        self._row = np.broadcast_to(self.value, (self.dim,)).copy()  # one user's value

    def sample(self, n, rng, xp):
        return xp.tile_rows(self._row, n)

    def pair_value(self, n: int, n_items: int, xp=NUMPY64) -> PairValue:
        pv = PairValue.from_user(xp.zeros((n, 1)), n_items, xp)
        pv.u += self.value[0]
        return pv

    def bounds(self):
        return float(self.value.min()), float(self.value.max())


# --------------------------------------------------------------------------- derived


def _coef_matrix(coef: Any, d_in: int, d_out: int, where: str) -> np.ndarray | float:
    """A linear coefficient: a number (elementwise, needs d_in == d_out or d_in == 1), a list of
    d_in numbers (dot product -> 1 output), or a (d_out, d_in) nested list."""
    if _is_number(coef):
        if d_in not in (1, d_out):
            raise SCMConfigError(f"{where}: a scalar coefficient needs a parent of dim {d_out} or 1, got dim {d_in}")
        return float(coef)
    arr = np.asarray(coef, dtype=float)
    if arr.ndim == 1 and arr.shape == (d_in,) and d_out == 1:
        return arr[None, :]
    if arr.ndim == 2 and arr.shape == (d_out, d_in):
        return arr
    raise SCMConfigError(f"{where}: coefficient of shape {arr.shape} does not map a dim-{d_in} parent to dim {d_out} "
                         f"(expected a number, a list of {d_in}, or a {d_out}x{d_in} matrix)")


def _parent_coefs(spec: dict, where: str) -> dict[str, Any]:
    parents = spec.get("parents")
    if not isinstance(parents, dict) or not parents:
        raise SCMConfigError(f"{where}.parents: expected a mapping of parent name -> coefficient, got {parents!r}")
    for p, c in parents.items():
        if not (_is_number(c) or isinstance(c, (list, tuple))):
            raise SCMConfigError(f"{where}.parents.{p}: expected a number or a list, got {c!r}")
    return dict(parents)


@register_mechanism("linear")
class Linear(Mechanism):
    """``value = bias + sum_p coef_p * parent_p (+ noise * N(0, 1))``.

    Level = the parents' combined level. At user or item level the output has ``dim``
    columns and optional additive Gaussian noise (user level: kept per user, so
    counterfactuals reuse it). At user_item level the output is a scalar and noise-free
    (a user_item node must stay a deterministic function of user and item variables, so that
    E[r | x, do(a)] is exact).
    """

    KEYS = Mechanism.KEYS | {"parents", "bias", "noise", "dim"}

    def __init__(self, name, spec, where, rng):
        super().__init__(name, spec, where, rng)
        self.coefs = _parent_coefs(spec, where)
        self.parents = list(self.coefs)
        self.bias = float(_get(spec, "bias", where, 0.0, check=_is_number, expect="a number"))
        self.noise = float(_get(spec, "noise", where, 0.0, check=_nonneg, expect="a number >= 0"))
        self.dim = _dim(spec, where)

    def resolve(self, graph):
        levels = [graph[p].level for p in self.parents]
        self.level = combine_levels(levels)
        if self.level == PAIR:
            if self.dim != 1:
                raise SCMConfigError(f"{self.where}.dim: a user_item node is a scalar, expected 1, got {self.dim}")
            if self.noise:
                raise SCMConfigError(f"{self.where}.noise: a user_item node is noise-free, expected 0, got {self.noise}")
        self.noise_dim = self.dim if (self.noise and self.level == USER) else 0
        self.W = {}
        for p in self.parents:
            d_in = 1 if graph[p].level == PAIR else graph[p].dim
            if self.level == PAIR and d_in != 1:
                raise SCMConfigError(f"{self.where}.parents.{p}: a user_item sum takes scalar parents, '{p}' has dim {d_in}")
            self.W[p] = _coef_matrix(self.coefs[p], d_in, self.dim, f"{self.where}.parents.{p}")
        self._plevel = {p: graph[p].level for p in self.parents}

    def compute(self, parents, noise, n, n_items, xp):
        if self.level == PAIR:
            return pair_sum(self.W, self._plevel, parents, self.bias, n, n_items, xp)
        out = None
        for p, w in self.W.items():
            x = parents[p]
            term = x * w if isinstance(w, float) else xp.matmul_t(x, xp.param(w))
            out = term if out is None else out + term
        out = out + self.bias
        if noise is not None:
            out = out + self.noise * noise
        return out


class _ScaledPair(Mechanism):
    """Two parents and a ``scale``; at user_item level the value is the outer form
    ``scale * user_i . item_k`` as a PairValue."""

    KEYS = Mechanism.KEYS | {"parents", "scale"}

    def __init__(self, name, spec, where, rng):
        super().__init__(name, spec, where, rng)
        self.parents = self._parent_list(spec, exact=2)
        self.scale = float(_get(spec, "scale", where, 1.0, check=_is_number, expect="a number"))

    def _set_pair(self, levels: list[str]) -> None:
        self.level, self.dim = PAIR, 1
        self.user_parent, self.item_parent = self.parents if levels[0] == USER else self.parents[::-1]

    def _pair(self, parents, xp) -> PairValue:
        U, I = parents[self.user_parent], parents[self.item_parent]
        return PairValue(U * self.scale, I, xp.zeros((U.shape[0],)), xp.zeros((I.shape[0],)), xp)


@register_mechanism("bilinear")
class Bilinear(_ScaledPair):
    """``value[i, k] = scale * user_i . item_k``: a user vector against an item vector of equal dim."""

    def resolve(self, graph):
        a, b = (graph[p] for p in self.parents)
        if {a.level, b.level} != {USER, ITEM}:
            raise SCMConfigError(f"{self.where}.parents: bilinear takes one user and one item node, got "
                                 f"{self.parents[0]} ({a.level}) and {self.parents[1]} ({b.level})")
        if a.dim != b.dim:
            raise SCMConfigError(f"{self.where}.parents: shape mismatch, {self.parents[0]} has dim {a.dim} "
                                 f"and {self.parents[1]} has dim {b.dim}")
        self._set_pair([a.level, b.level])

    def compute(self, parents, noise, n, n_items, xp):
        return self._pair(parents, xp)


@register_mechanism("product")
class Product(_ScaledPair):
    """``value = scale * a * b`` for two scalar (dim 1) parents, e.g. price sensitivity x price."""

    def resolve(self, graph):
        for p in self.parents:
            if graph[p].level == PAIR or graph[p].dim != 1:
                raise SCMConfigError(f"{self.where}.parents: product takes scalar user or item parents, '{p}' is "
                                     f"{graph[p].level} of dim {graph[p].dim}")
        levels = [graph[p].level for p in self.parents]
        self.level, self.dim = combine_levels(levels), 1
        if self.level == PAIR:
            self._set_pair(levels)

    def compute(self, parents, noise, n, n_items, xp):
        if self.level != PAIR:
            a, b = (parents[p] for p in self.parents)
            return self.scale * a * b
        return self._pair(parents, xp)


@register_mechanism("mlp")
class MLP(Mechanism):
    """A small fixed random MLP of the concatenated parents: tanh hidden layer(s), linear out.

    Weights are drawn once from the world seed and the node name (so a world is reproducible
    and ``do()`` on another node leaves them unchanged). User or item level.
    """

    KEYS = Mechanism.KEYS | {"parents", "hidden", "gain", "dim"}

    def __init__(self, name, spec, where, rng):
        super().__init__(name, spec, where, rng)
        self.parents = self._parent_list(spec)
        if not self.parents:
            raise SCMConfigError(f"{where}.parents: expected at least one parent")
        self.hidden = _get(spec, "hidden", where, [16], check=lambda h: all(isinstance(x, int) and x >= 1 for x in
                           ([h] if isinstance(h, int) else h)), expect="an integer or list of integers >= 1")
        self.hidden = [self.hidden] if isinstance(self.hidden, int) else list(self.hidden)
        self.gain = float(_get(spec, "gain", where, 1.0, check=_positive, expect="a number > 0"))
        self.dim = _dim(spec, where)
        self.rng = rng

    def resolve(self, graph):
        levels = [graph[p].level for p in self.parents]
        self.level = combine_levels(levels)
        if self.level == PAIR:
            raise SCMConfigError(f"{self.where}.parents: an mlp node is user or item level; its parents mix "
                                 "user and item nodes (use bilinear/product/linear for user_item)")
        sizes = [sum(graph[p].dim for p in self.parents), *self.hidden, self.dim]
        check_memory(8.0 * sum(a * b for a, b in zip(sizes, sizes[1:])), f"{self.where}.hidden",
                     f"an mlp with layer sizes {sizes}")
        self.weights = [self.rng.normal(0, self.gain / np.sqrt(a), size=(a, b)) for a, b in zip(sizes, sizes[1:])]

    def compute(self, parents, noise, n, n_items, xp):
        h = xp.concat([parents[p] for p in self.parents], axis=1)
        for i, w in enumerate(self.weights):
            h = h @ xp.param(w)
            if i < len(self.weights) - 1:
                h = xp.tanh(h)
        return h


# --------------------------------------------------------------------------- responses


class Response(Mechanism):
    """An outcome of recommending an item to a user. ``probability`` / ``mean`` are exact
    functions of user and item variables, so E[r | x, do(a)] is exact."""

    KEYS = Mechanism.KEYS | {"parents", "bias", "gate"}

    def __init__(self, name, spec, where, rng):
        super().__init__(name, spec, where, rng)
        self.coefs = _parent_coefs(spec, where)
        self.parents = list(self.coefs)
        self.bias = float(_get(spec, "bias", where, 0.0, check=_is_number, expect="a number"))
        self.gate = spec.get("gate")
        if self.gate is not None:
            if not isinstance(self.gate, str):
                raise SCMConfigError(f"{where}.gate: expected the name of a response node, got {self.gate!r}")
            self.parents = self.parents + [self.gate]
        self.level, self.dim = RESPONSE, 1

    def resolve(self, graph):
        if self.gate is not None and graph[self.gate].level != RESPONSE:
            raise SCMConfigError(f"{self.where}.gate: '{self.gate}' is not a response node")
        self._plevel = {}
        for p in self.coefs:
            m = graph[p]
            if m.level == RESPONSE:
                raise SCMConfigError(f"{self.where}.parents.{p}: a response cannot be a linear parent (use gate: {p})")
            if m.level != PAIR and m.dim != 1:
                raise SCMConfigError(f"{self.where}.parents.{p}: expected a scalar (dim 1) node, '{p}' has dim {m.dim}")
            if not _is_number(self.coefs[p]):
                raise SCMConfigError(f"{self.where}.parents.{p}: expected a number, got {self.coefs[p]!r}")
            self._plevel[p] = m.level

    def linear_predictor(self, values: dict[str, Any], n: int, n_items: int, xp=NUMPY64) -> PairValue:
        """The response's linear predictor (logit or log-mean) as a PairValue."""
        return pair_sum(self.coefs, self._plevel, values, self.bias, n, n_items, xp)

    #: True when ``expected`` increases with the linear predictor (so the best item by linear
    #: predictor is the best by mean: a maximum inner product over the factors).
    monotone = True


def sigmoid(x: np.ndarray) -> np.ndarray:
    """In place where possible: sigmoid(x) = 0.5 * tanh(x / 2) + 0.5 (tanh is ~10x cheaper than exp)."""
    return NUMPY64.sigmoid(x)


@register_mechanism("bernoulli")
class Bernoulli(Response):
    """A binary response: ``P(r = 1) = sigmoid(bias + sum_p coef_p * parent_p)`` (times the gate's
    outcome when ``gate`` names another response: purchase happens only after a click)."""

    noise_kind = "uniform"

    def expected(self, logit, xp=NUMPY64):
        return xp.sigmoid(logit)


class _NormalNoiseResponse(Response):
    """A continuous response drawn from its mean and one standard normal per user and slot
    (``draw``); ``sigma`` is its noise scale."""

    noise_kind = "normal"
    sigma_default, sigma_check, sigma_expect = 0.5, staticmethod(_positive), "a number > 0"

    KEYS = Response.KEYS | {"sigma"}

    def __init__(self, name, spec, where, rng):
        super().__init__(name, spec, where, rng)
        self.sigma = float(_get(spec, "sigma", where, self.sigma_default, check=self.sigma_check,
                                expect=self.sigma_expect))


@register_mechanism("lognormal_response")
class LogNormalResponse(_NormalNoiseResponse):
    """A positive amount, e.g. dwell time: ``r = exp(mu + sigma * eps)`` with mu linear in the
    parents (times the gate's outcome). ``E[r] = exp(mu + sigma^2 / 2)`` (x E[gate])."""

    def expected(self, mu, xp=NUMPY64):
        return xp.exp(mu + 0.5 * self.sigma**2)

    def draw(self, mean, eps, xp=NUMPY64):
        """The amount from its mean and a standard normal: expected() maps mu to the mean, so mu is recovered."""
        return xp.exp(xp.log(mean) - 0.5 * self.sigma**2 + self.sigma * eps)


@register_mechanism("gaussian_response")
class GaussianResponse(_NormalNoiseResponse):
    """A real-valued response with Gaussian noise: ``r = mu + sigma * eps``, mu linear in the
    parents (the linear bandit's reward model, e.g. Russac et al. 2019's experiments)."""

    sigma_default, sigma_check, sigma_expect = 1.0, staticmethod(_nonneg), "a number >= 0"

    def expected(self, mu, xp=NUMPY64):
        return mu

    def draw(self, mean, eps, xp=NUMPY64):
        return mean + self.sigma * eps


@register_mechanism("action_set")
class ActionSet(_Exogenous):
    """A fresh set of ``n_actions`` action vectors of ``action_dim`` per decision (a user-level
    value of dim n_actions * action_dim, action k in columns k*action_dim ...): each drawn
    uniform in [low, high]^action_dim and scaled into the unit ball when its norm exceeds 1
    (the action sets of Russac et al. 2019's experiments)."""

    KEYS = Mechanism.KEYS | {"level", "n_actions", "action_dim", "low", "high"}

    def __init__(self, name, spec, where, rng):
        super().__init__(name, {k: v for k, v in spec.items() if k not in ("n_actions", "action_dim", "low", "high")},
                         where, rng)
        int_ok = lambda v: isinstance(v, int) and not isinstance(v, bool) and v >= 1  # noqa: E731
        self.n_actions = _get(spec, "n_actions", where, check=int_ok, expect="an integer >= 1")
        self.action_dim = _get(spec, "action_dim", where, check=int_ok, expect="an integer >= 1")
        self.low = float(_get(spec, "low", where, -1.0, check=_is_number, expect="a number"))
        self.high = float(_get(spec, "high", where, 1.0, check=lambda h: _is_number(h) and h > self.low,
                               expect=f"a number > low ({self.low})"))
        self.dim = self.n_actions * self.action_dim

    def sample(self, n, rng, xp):
        a = self.low + (self.high - self.low) * xp.random(rng, (n, self.n_actions, self.action_dim))
        norm = (a * a).sum(axis=2, keepdims=True) ** 0.5
        return (a / norm.clip(1.0, None)).reshape(n, self.dim)

    def bounds(self):
        return -1.0, 1.0


@register_mechanism("action_dot")
class ActionDot(Mechanism):
    """The value of each action of a per-decision action set: ``value[i, k] = scale *
    actions_i[k] . theta_i`` for an ``action_set`` node and a user-level parameter node of
    dim action_dim (a linear bandit, one parameter for all actions). As a PairValue:
    U = actions * tile(theta), I = the block indicator of action k. Item k is action k: the
    world has at most n_actions items."""

    KEYS = Mechanism.KEYS | {"parents", "scale"}

    def __init__(self, name, spec, where, rng):
        super().__init__(name, spec, where, rng)
        self.parents = self._parent_list(spec, exact=2)
        self.scale = float(_get(spec, "scale", where, 1.0, check=_is_number, expect="a number"))

    def resolve(self, graph):
        acts, theta = (graph[p] for p in self.parents)
        if acts.level != USER or theta.level != USER or acts.dim % theta.dim:
            raise SCMConfigError(f"{self.where}.parents: expected user nodes of actions (n_actions x d features, "
                                 f"e.g. an action_set) and of a parameter (d), got '{self.parents[0]}' ({acts.level}, "
                                 f"dim {acts.dim}) and '{self.parents[1]}' ({theta.level}, dim {theta.dim})")
        self.level, self.dim, self.d = PAIR, 1, theta.dim
        self.k = acts.dim // theta.dim
        self._blocks = np.kron(np.eye(self.k), np.ones((1, self.d)))  # (K, K d)

    def compute(self, parents, noise, n, n_items, xp):
        if n_items > self.k:  # item k is action k of the set (a smaller catalogue uses the first n_items)
            raise SCMConfigError(f"{self.where}: the action set has {self.k} actions, the world {n_items} items "
                                 f"(set env.n_items={self.k})")
        acts, theta = parents[self.parents[0]], parents[self.parents[1]]
        U = acts * xp.concat([theta] * self.k, axis=1) * self.scale
        return PairValue(U, xp.param(self._blocks[:n_items]), xp.zeros((acts.shape[0],)), xp.zeros((n_items,)), xp)


def build_mechanism(name: str, spec: Any, where: str, rng: np.random.Generator) -> Mechanism:
    if not isinstance(spec, dict):
        raise SCMConfigError(f"{where}: expected a mapping with a 'type', got {spec!r}")
    if "_target_" in spec:
        from hydra.utils import get_class

        try:
            cls = get_class(spec["_target_"])
        except Exception as e:  # hydra raises several types; the message is what matters
            raise SCMConfigError(f"{where}._target_: cannot import '{spec['_target_']}' ({e})") from None
        if not (isinstance(cls, type) and issubclass(cls, Mechanism)):
            raise SCMConfigError(f"{where}._target_: '{spec['_target_']}' is not a Mechanism subclass")
        return cls(name, {k: v for k, v in spec.items() if k != "_target_"}, where, rng)
    kind = spec.get("type")
    if kind not in MECHANISMS:
        raise SCMConfigError(f"{where}.type: unknown mechanism {kind!r} (known: {', '.join(sorted(MECHANISMS))})")
    check_keys(spec, MECHANISMS[kind].KEYS, where, SCMConfigError)
    return MECHANISMS[kind](name, spec, where, rng)
