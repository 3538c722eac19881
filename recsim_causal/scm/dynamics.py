"""Time in the SCM: what changes with t, the number of decisions made before.

A World without a ``dynamics:`` block is stationary. With one, the World asks its
:class:`Dynamics` three questions, each a pure function of t (and the world seed), so the
truth ``expected_reward`` stays exact at every t and any t can be asked in any order:

* ``user_offsets(t)``: each shifted user node's offset (dim,), added to the node's value of
  the users drawn at t (a population drift: the users who arrive at t are different);
* ``item_state(t)``: the catalogue at t (churn) and each shifted or seasonal item node's
  offset (K, dim), from which the World recomputes the item side of every response;
* ``change_points(horizon)``: the abrupt changes up to ``horizon`` (for metrics and plots).

YAML (strict keys, like every other block)::

    dynamics:
      shift:                                 # node means that move, user or item level
        taste_trend: {kind: jumps, every: 50000, jump: 1.0, drift: 0.3}
        theta: {kind: schedule, points: [1000, 2000], values: [[-1, 0], [0, 1]]}
        theta2: {kind: rotation, start: 0, stop: 6000, angle_from: 0.0, angle_to: 3.14, radius: 1.0}
      churn: {every: 50000, fraction: 0.1}   # 10% of the catalogue replaced by new items (with texts)
      seasonal:
        popularity: {period: 100000, amplitude: 0.5}   # an item node oscillates, each item its own phase

Shift kinds are a registry (:data:`SHIFTS`); a new kind is a class with ``offset(t)`` and
``change_points(horizon)``.
"""

from __future__ import annotations

import zlib
from typing import Any, Callable

import numpy as np

from recsim_causal.config import check_keys
from recsim_causal.scm.mechanisms import ITEM, USER, SCMConfigError

DYNAMICS_KEYS = {"shift", "churn", "seasonal"}


def _number(spec: dict, key: str, where: str, default: Any = ..., *, low: float | None = None,
            low_open: bool = False, integer: bool = False) -> Any:
    if key not in spec:
        if default is ...:
            raise SCMConfigError(f"{where}.{key}: missing (expected {'an integer' if integer else 'a number'})")
        return default
    v = spec[key]
    ok = isinstance(v, (int, np.integer) if integer else (int, float, np.integer, np.floating)) and not isinstance(v, bool)
    ok = ok and np.isfinite(v) and (low is None or (v > low if low_open else v >= low))
    if not ok:
        bound = "" if low is None else f" {'>' if low_open else '>='} {low:g}"
        raise SCMConfigError(f"{where}.{key}: expected {'an integer' if integer else 'a number'}{bound}, got {v!r}")
    return int(v) if integer else float(v)


class Shift:
    """A node's offset as a function of t: (dim,) numbers added to the node's value."""

    KEYS: frozenset[str] = frozenset({"kind"})

    def __init__(self, spec: dict, dim: int, where: str, seed: list[int]):
        check_keys(spec, self.KEYS, where, SCMConfigError)
        self.dim, self.where, self.seed = dim, where, seed

    def offset(self, t: int) -> np.ndarray:
        raise NotImplementedError

    def change_points(self, horizon: int) -> list[int]:
        return []


SHIFTS: dict[str, type[Shift]] = {}


def register_shift(name: str) -> Callable[[type[Shift]], type[Shift]]:
    def deco(cls: type[Shift]) -> type[Shift]:
        SHIFTS[name] = cls
        return cls

    return deco


@register_shift("jumps")
class Jumps(Shift):
    """Abrupt changes every ``every`` decisions, a slow drift between.

    Epoch e = t // every. The mean is 0 in epoch 0 (the world as configured) and
    ``jump * z_e`` after the e-th change, z_e ~ N(0, I_dim); within an epoch it moves linearly
    by ``drift * w_e`` per ``every`` decisions, w_e ~ N(0, I_dim): offset(t) = jump z_e +
    drift ((t mod every) / every) w_e. z_e and w_e are drawn from (world seed, node, e).
    """

    KEYS = Shift.KEYS | {"every", "jump", "drift"}

    def __init__(self, spec, dim, where, seed):
        super().__init__(spec, dim, where, seed)
        self.every = _number(spec, "every", where, low=1, integer=True)
        self.jump = _number(spec, "jump", where, 1.0, low=0)
        self.drift = _number(spec, "drift", where, 0.0, low=0)

    def _draws(self, epoch: int) -> tuple[np.ndarray, np.ndarray]:
        z = np.random.default_rng([*self.seed, epoch]).standard_normal((2, self.dim))
        return z[0], z[1]

    def offset(self, t):
        epoch, within = divmod(int(t), self.every)
        z, w = self._draws(epoch)
        mean = np.zeros(self.dim) if epoch == 0 else self.jump * z
        return mean + self.drift * (within / self.every) * w

    def change_points(self, horizon):
        return list(range(self.every, horizon, self.every))


@register_shift("schedule")
class Schedule(Shift):
    """A fixed piecewise-constant schedule: offset 0 before ``points[0]``, ``values[i]`` from
    ``points[i]`` on (e.g. a parameter that jumps between given points of the unit circle)."""

    KEYS = Shift.KEYS | {"points", "values"}

    def __init__(self, spec, dim, where, seed):
        super().__init__(spec, dim, where, seed)
        points, values = spec.get("points"), spec.get("values")
        if not isinstance(points, list) or not points or not all(
                isinstance(p, int) and not isinstance(p, bool) and p >= 0 for p in points) or points != sorted(points):
            raise SCMConfigError(f"{where}.points: expected an increasing list of integers >= 0, got {points!r}")
        try:
            arr = np.asarray(values, dtype=float)
        except (TypeError, ValueError):
            arr = None
        if arr is None or arr.size != len(points) * dim or arr.ndim > 2 or not np.isfinite(arr).all():
            raise SCMConfigError(f"{where}.values: expected {len(points)} vectors of {dim} numbers (one per point), "
                                 f"got {values!r}")
        self.points, self.values = np.asarray(points), arr.reshape(len(points), dim)

    def offset(self, t):
        i = int(np.searchsorted(self.points, int(t), side="right")) - 1
        return np.zeros(self.dim) if i < 0 else self.values[i].copy()

    def change_points(self, horizon):
        return [int(p) for p in self.points if 0 < p < horizon]


@register_shift("rotation")
class Rotation(Shift):
    """A slowly rotating vector in the first two coordinates: ``radius (cos a, sin a)``, the
    angle a moving linearly from ``angle_from`` (until ``start``) to ``angle_to`` (from ``stop``)."""

    KEYS = Shift.KEYS | {"start", "stop", "angle_from", "angle_to", "radius"}

    def __init__(self, spec, dim, where, seed):
        super().__init__(spec, dim, where, seed)
        if dim < 2:
            raise SCMConfigError(f"{where}.kind: a rotation needs a node of dim >= 2, got dim {dim}")
        self.start = _number(spec, "start", where, 0, low=0, integer=True)
        self.stop = _number(spec, "stop", where, low=self.start, low_open=True, integer=True)
        self.angle_from = _number(spec, "angle_from", where, 0.0)
        self.angle_to = _number(spec, "angle_to", where)
        self.radius = _number(spec, "radius", where, 1.0, low=0)

    def offset(self, t):
        frac = min(max((int(t) - self.start) / (self.stop - self.start), 0.0), 1.0)
        a = self.angle_from + frac * (self.angle_to - self.angle_from)
        out = np.zeros(self.dim)
        out[:2] = self.radius * np.cos(a), self.radius * np.sin(a)
        return out


class Churn:
    """Every ``every`` decisions, ``fraction`` of the catalogue's slots get new items (new
    features and texts, from the same population); the items they replace retire. The slots
    of change e are drawn from (world seed, e)."""

    KEYS = frozenset({"every", "fraction"})

    def __init__(self, spec: Any, where: str, seed: int, n_items: int):
        if not isinstance(spec, dict):
            raise SCMConfigError(f"{where}: expected a mapping with every and fraction, got {spec!r}")
        check_keys(spec, self.KEYS, where, SCMConfigError)
        self.every = _number(spec, "every", where, low=1, integer=True)
        fraction = spec.get("fraction")
        if not isinstance(fraction, (int, float)) or isinstance(fraction, bool) or not 0 < fraction <= 1:
            raise SCMConfigError(f"{where}.fraction: expected a number in (0, 1], got {fraction!r}")
        self.fraction, self.seed, self.n_items = float(fraction), seed, n_items
        self.n_new = max(1, int(round(fraction * n_items)))
        self._catalogs: list[Any] = []

    def epoch(self, t: int) -> int:
        return int(t) // self.every

    def catalog(self, epoch: int, base: Any) -> Any:
        """The catalogue after ``epoch`` changes (each built from the one before, cached)."""
        if not self._catalogs:
            self._catalogs.append(base)
        while len(self._catalogs) <= epoch:
            e = len(self._catalogs)
            rng = np.random.default_rng([self.seed, 0xC4A2, e])
            slots = np.sort(rng.choice(self.n_items, size=self.n_new, replace=False))
            self._catalogs.append(self._catalogs[-1].replace(slots, rng, self.n_items + (e - 1) * self.n_new))
        return self._catalogs[epoch]

    def change_points(self, horizon: int) -> list[int]:
        return list(range(self.every, horizon, self.every))


class Seasonal:
    """An item node's cycle: offset_k(t) = amplitude sin(2 pi t / period + phase_k), a phase
    per item slot drawn from (world seed, node)."""

    KEYS = frozenset({"period", "amplitude"})

    def __init__(self, spec: Any, where: str, seed: list[int], n_items: int, dim: int):
        if not isinstance(spec, dict):
            raise SCMConfigError(f"{where}: expected a mapping with period and amplitude, got {spec!r}")
        check_keys(spec, self.KEYS, where, SCMConfigError)
        self.period = _number(spec, "period", where, low=0, low_open=True)
        self.amplitude = _number(spec, "amplitude", where, low=0)
        self.phase = np.random.default_rng(seed).uniform(0, 2 * np.pi, size=(n_items, 1))
        self.dim = dim

    def offset(self, t: int) -> np.ndarray:
        return np.broadcast_to(self.amplitude * np.sin(2 * np.pi * int(t) / self.period + self.phase),
                               (self.phase.shape[0], self.dim))


class Dynamics:
    """What changes with time in a World (see the module docstring). ``Dynamics(None, ...)``
    is the stationary world: no offsets, one catalogue."""

    def __init__(self, spec: Any, *, mech: dict, seed: int, n_items: int, where: str = "scm.dynamics"):
        spec = spec or {}
        if not isinstance(spec, dict):
            raise SCMConfigError(f"{where}: expected a mapping (shift, churn, seasonal), got {spec!r}")
        check_keys(spec, DYNAMICS_KEYS, where, SCMConfigError)
        self.user_shifts: dict[str, Shift] = {}
        self.item_shifts: dict[str, Shift] = {}
        self.seasonal: dict[str, Seasonal] = {}
        known = ", ".join(sorted(n for n, m in mech.items() if m.level in (USER, ITEM)))
        for name, s in self._nodes(spec.get("shift"), f"{where}.shift", mech, known, (USER, ITEM)).items():
            w = f"{where}.shift.{name}"
            if not isinstance(s, dict) or s.get("kind") not in SHIFTS:
                kind = s.get("kind") if isinstance(s, dict) else s
                raise SCMConfigError(f"{w}.kind: expected one of {', '.join(sorted(SHIFTS))}, got {kind!r}")
            shift = SHIFTS[s["kind"]](s, mech[name].dim, w, [seed, 0x5F1F7, zlib.crc32(name.encode())])
            (self.user_shifts if mech[name].level == USER else self.item_shifts)[name] = shift
        for name, s in self._nodes(spec.get("seasonal"), f"{where}.seasonal", mech, known, (ITEM,)).items():
            self.seasonal[name] = Seasonal(s, f"{where}.seasonal.{name}", [seed, 0x5EA5, zlib.crc32(name.encode())],
                                           n_items, mech[name].dim)
        self.churn = None if spec.get("churn") is None else Churn(spec["churn"], f"{where}.churn", seed, n_items)

    @staticmethod
    def _nodes(spec: Any, where: str, mech: dict, known: str, levels: tuple[str, ...]) -> dict:
        if spec is None:
            return {}
        if not isinstance(spec, dict):
            raise SCMConfigError(f"{where}: expected a mapping of node name -> settings, got {spec!r}")
        for name in spec:
            if name not in mech or mech[name].level not in (USER, ITEM):
                raise SCMConfigError(f"{where}: unknown node '{name}' (user and item nodes: {known})")
            if mech[name].level not in levels:
                raise SCMConfigError(f"{where}.{name}: a {mech[name].level} node; expected a {' or '.join(levels)} node")
        return spec

    @property
    def stationary(self) -> bool:
        return not (self.user_shifts or self.item_shifts or self.seasonal or self.churn)

    @property
    def moves_items(self) -> bool:
        return bool(self.item_shifts or self.seasonal or self.churn)

    def user_offsets(self, t: int) -> dict[str, np.ndarray]:
        """Each shifted user node's offset at t, (dim,)."""
        return {name: s.offset(t) for name, s in self.user_shifts.items()}

    def item_offsets(self, t: int) -> dict[str, np.ndarray]:
        """Each shifted or seasonal item node's offset at t, (K, dim) or (dim,)."""
        out: dict[str, np.ndarray] = {name: s.offset(t) for name, s in self.item_shifts.items()}
        for name, s in self.seasonal.items():
            out[name] = out[name] + s.offset(t) if name in out else s.offset(t)
        return out

    def epoch(self, t: int) -> int:
        """How many churn changes happened before t (0 without churn)."""
        return 0 if self.churn is None else self.churn.epoch(t)

    def catalog(self, t: int, base: Any) -> Any:
        return base if self.churn is None else self.churn.catalog(self.churn.epoch(t), base)

    def change_points(self, horizon: int) -> list[int]:
        """The abrupt changes (shift jumps, schedule points, churn) in (0, horizon), sorted."""
        points = set()
        for s in (*self.user_shifts.values(), *self.item_shifts.values()):
            points.update(s.change_points(horizon))
        if self.churn is not None:
            points.update(self.churn.change_points(horizon))
        return sorted(points)
