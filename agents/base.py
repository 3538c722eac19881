"""The Policy contract, the base class every built-in agent derives from, and output validation.

A policy maps a batch of contexts ``(B, d)`` to a distribution over ``K = n_actions`` actions.
Because every policy reports its distribution, every policy can be a logger or an OPE target:

- ``action_probs(contexts) -> (B, K)`` float64, rows sum to 1;
- ``act(contexts, rng) -> (actions (B,) int64, pscores (B,) float64)``, where
  ``pscores[i] == action_probs(contexts)[i, actions[i]]``;
- ``update(contexts, actions, rewards)`` learns from a batch of feedback.

A deterministic policy reports its true distribution: one-hot, ties split evenly.

Slates are a documented extension of the contract (:meth:`BasePolicy.act_slate`): Plackett-Luce
sampling without replacement from the policy's distribution, with per-position propensities.
"""

from __future__ import annotations

import inspect
import json
import math
from typing import Any, Protocol, runtime_checkable

import numpy as np

from recsim_causal.config import check_keys as config_check_keys
from recsim_causal.config import check_seed as config_check_seed

#: Tolerance on ``|sum(row) - 1|`` accepted by :func:`check_action_probs`.
PROB_TOL = 1e-6
#: Scores within ``TIE_RTOL * max(1, |max|)`` of a row's maximum count as tied.
TIE_RTOL = 1e-12
# Scales a uniform draw to stay strictly below a CDF's total (see sample_categorical).
_BELOW_ONE = 1.0 - 2.0**-52


@runtime_checkable
class Policy(Protocol):
    """What the runner, the envs and OPE need from any policy, built-in or user-written."""

    n_actions: int

    def action_probs(self, contexts: np.ndarray) -> np.ndarray:
        """``(B, d)`` contexts -> ``(B, K)`` float64 distribution, rows summing to 1."""
        ...

    def act(self, contexts: np.ndarray, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
        """``(B, d)`` contexts -> actions ``(B,)`` int64 and their propensities ``(B,)`` float64."""
        ...

    def update(self, contexts: np.ndarray, actions: np.ndarray, rewards: np.ndarray) -> None:
        """Learn from a batch: contexts ``(B, d)``, actions ``(B,)``, rewards ``(B,)``."""
        ...


# --------------------------------------------------------------------------- argument checks


def check_int(owner: str, name: str, value: Any, minimum: int) -> int:
    """An integer constructor argument ``>= minimum``, else a one-line ``ValueError`` naming it."""
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, np.integer)):
        raise ValueError(f"{owner}: {name} must be an integer >= {minimum}, got {value!r}")
    if value < minimum:
        raise ValueError(f"{owner}: {name} must be >= {minimum}, got {value}")
    return int(value)


def check_float(
    owner: str,
    name: str,
    value: Any,
    *,
    low: float | None = None,
    high: float | None = None,
    low_open: bool = False,
) -> float:
    """A finite real constructor argument in ``[low, high]`` (``(low, high]`` if ``low_open``)."""
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, float, np.integer, np.floating)):
        raise ValueError(f"{owner}: {name} must be a number, got {value!r}")
    value = float(value)
    if not math.isfinite(value):
        raise ValueError(f"{owner}: {name} must be finite, got {value}")
    if high is not None and low is not None:
        bad = value > high or (value <= low if low_open else value < low)
        if bad:
            left = "(" if low_open else "["
            raise ValueError(f"{owner}: {name} must be in {left}{low:g}, {high:g}], got {value}")
    elif low is not None:
        if low_open and value <= low:
            raise ValueError(f"{owner}: {name} must be > {low:g}, got {value}")
        if not low_open and value < low:
            raise ValueError(f"{owner}: {name} must be >= {low:g}, got {value}")
    return value


def check_seed(owner: str, seed: Any) -> int | None:
    """A seed: ``None`` (fresh OS entropy) or an integer in ``[0, 2**32)``, the one limit every
    agent shares (:data:`recsim_causal.config.SEED_LIMIT`)."""
    if seed is None:
        return None
    return config_check_seed(seed, f"{owner}: seed")


# --------------------------------------------------------------------------- output validation


def _policy_name(policy: Any) -> str:
    return type(policy).__name__


def _first_bad(mask: np.ndarray) -> tuple[int, ...]:
    return tuple(int(i) for i in np.argwhere(mask)[0])


def check_action_probs(policy: Any, probs: Any, n_rows: int) -> np.ndarray:
    """Validate ``policy.action_probs`` output and return it as float64 ``(n_rows, K)``.

    Raises a one-line ``ValueError`` naming the policy's class and the first problem found:
    wrong shape, not numeric, NaN/inf, a negative entry, or a row not summing to 1 (within
    :data:`PROB_TOL`).
    """
    name = _policy_name(policy)
    n_actions = int(policy.n_actions)
    arr = np.asarray(probs)
    if arr.shape != (n_rows, n_actions):
        raise ValueError(
            f"{name}.action_probs: expected shape (B, K) = ({n_rows}, {n_actions}), got {arr.shape}"
        )
    if arr.dtype.kind not in "fiub":
        raise ValueError(f"{name}.action_probs: expected a float array, got dtype {arr.dtype}")
    arr = arr.astype(np.float64, copy=False)
    if not n_rows:
        return arr
    # fast path: two reductions catch NaN (comparisons with NaN are False), inf and negatives
    if not (arr.min() >= 0.0 and arr.max() < np.inf):
        finite = np.isfinite(arr)
        if not finite.all():
            row, col = _first_bad(~finite)
            raise ValueError(f"{name}.action_probs: NaN or inf at row {row}, action {col} ({arr[row, col]})")
        row, col = _first_bad(arr < 0)
        raise ValueError(f"{name}.action_probs: negative probability {arr[row, col]:.6g} at row {row}, action {col}")
    dev = np.abs(arr.sum(axis=1) - 1.0)
    if dev.max() > PROB_TOL:
        row = int(np.argmax(dev > PROB_TOL))
        raise ValueError(
            f"{name}.action_probs: rows must sum to 1 (tol {PROB_TOL:g}); row {row} sums to {arr[row].sum():.9g}"
        )
    return arr


def check_actions(policy: Any, actions: Any, pscores: Any, n_rows: int) -> tuple[np.ndarray, np.ndarray]:
    """Validate ``policy.act`` output; return ``(actions int64 (B,), pscores float64 (B,))``.

    Raises a one-line ``ValueError`` naming the policy's class: wrong shape, non-integer actions,
    actions outside ``[0, K)``, pscores NaN/inf or outside ``(0, 1]``.
    """
    name = _policy_name(policy)
    n_actions = int(policy.n_actions)
    a = np.asarray(actions)
    p = np.asarray(pscores)
    if a.shape != (n_rows,):
        raise ValueError(f"{name}.act: expected actions of shape (B,) = ({n_rows},), got {a.shape}")
    if p.shape != (n_rows,):
        raise ValueError(f"{name}.act: expected pscores of shape (B,) = ({n_rows},), got {p.shape}")
    if a.dtype.kind not in "iu":
        raise ValueError(f"{name}.act: actions must be integers, got dtype {a.dtype}")
    a = a.astype(np.int64, copy=False)
    if p.dtype.kind not in "fiu":
        raise ValueError(f"{name}.act: pscores must be floats, got dtype {p.dtype}")
    p = p.astype(np.float64, copy=False)
    if not n_rows:
        return a, p
    if a.min() < 0 or a.max() >= n_actions:
        row = int(np.argmax((a < 0) | (a >= n_actions)))
        raise ValueError(f"{name}.act: action {a[row]} at row {row} is out of range [0, {n_actions})")
    if not (p.min() > 0.0 and p.max() <= 1.0):  # False for NaN too
        row = int(np.argmax(~((p > 0) & (p <= 1))))
        raise ValueError(f"{name}.act: pscores must be in (0, 1]; got {p[row]} at row {row}")
    return a, p


def validate_policy_output(
    policy: Any,
    n_rows: int,
    *,
    probs: Any = None,
    actions: Any = None,
    pscores: Any = None,
    pscore_atol: float | None = 1e-9,
) -> None:
    """Validate whatever outputs are given for a batch of ``n_rows`` contexts.

    ``probs`` is checked by :func:`check_action_probs`, ``actions``/``pscores`` by
    :func:`check_actions`. With all three and ``pscore_atol`` not ``None``, each pscore must
    equal ``probs[i, actions[i]]`` within ``pscore_atol`` (pass ``None`` for a policy whose
    pscores are an approximation of its distribution).
    """
    p = check_action_probs(policy, probs, n_rows) if probs is not None else None
    if actions is None and pscores is None:
        return
    a, ps = check_actions(policy, actions, pscores, n_rows)
    if p is not None and pscore_atol is not None and n_rows:
        expected = p[np.arange(n_rows), a]
        dev = np.abs(ps - expected)
        if (dev > pscore_atol).any():
            row = int(np.argmax(dev > pscore_atol))
            raise ValueError(
                f"{_policy_name(policy)}.act: pscore {ps[row]:.9g} of action {a[row]} at row {row} "
                f"differs from action_probs {expected[row]:.9g}"
            )


def check_policy(
    policy: Any,
    contexts: np.ndarray,
    rng: np.random.Generator,
    *,
    pscore_atol: float | None = 1e-9,
) -> None:
    """Check that ``policy`` honours the :class:`Policy` contract on a sample batch of contexts.

    Verifies the protocol's members, then calls ``action_probs`` and ``act`` once and validates
    both with :func:`validate_policy_output`. Does not call ``update``.
    """
    name = _policy_name(policy)
    missing = [m for m in ("n_actions", "action_probs", "act", "update") if not hasattr(policy, m)]
    if missing:
        raise ValueError(f"{name}: does not implement the Policy protocol (missing: {', '.join(missing)})")
    n_actions = policy.n_actions
    if isinstance(n_actions, bool) or not isinstance(n_actions, (int, np.integer)) or n_actions < 1:
        raise ValueError(f"{name}: n_actions must be an integer >= 1, got {n_actions!r}")
    n_rows = int(np.shape(contexts)[0])
    probs = policy.action_probs(contexts)
    actions, pscores = policy.act(contexts, rng)
    validate_policy_output(
        policy, n_rows, probs=probs, actions=actions, pscores=pscores, pscore_atol=pscore_atol
    )


# --------------------------------------------------------------------------- shared numerics


def sample_categorical(probs: np.ndarray, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """One draw per row from ``probs`` ``(B, K)``; an action of probability 0 is never drawn.

    Inverse-CDF sampling, one uniform per row. Returns ``(actions (B,) int64, pscores (B,) float64)``
    with ``pscores[i] = probs[i, actions[i]]``.
    """
    cdf = np.add.accumulate(probs, axis=1)
    # u < cdf[:, -1] strictly (the scale is just below 1), so some cdf entry exceeds u, and the
    # first that does belongs to an action of positive probability
    u = rng.random(len(probs)) * (cdf[:, -1] * _BELOW_ONE)
    actions = (cdf > u[:, None]).argmax(axis=1)
    return actions, probs[np.arange(len(probs)), actions]


def sample_categorical_shared(
    probs: np.ndarray, n_rows: int, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray]:
    """``n_rows`` draws from one distribution ``probs`` ``(K,)``; same rules as :func:`sample_categorical`."""
    cdf = np.add.accumulate(probs)
    u = rng.random(n_rows) * (cdf[-1] * _BELOW_ONE)
    actions = np.searchsorted(cdf, u, side="right")
    return actions, probs[actions]


def restricted_probs(probs: np.ndarray, taken: np.ndarray) -> np.ndarray:
    """``probs`` (B, K) restricted to the actions not ``taken`` (B, K) bool and renormalized; a row
    with no mass left is uniform over its remaining actions (Plackett-Luce's next position)."""
    weights = np.where(taken, 0.0, probs)
    total = weights.sum(axis=1, keepdims=True)
    empty = total[:, 0] <= 0
    if empty.any():
        weights[empty] = ~taken[empty]
        total[empty] = weights[empty].sum(axis=1, keepdims=True)
    return weights / total


def argmax_frequencies(draws: np.ndarray) -> np.ndarray:
    """How often each action wins: ``draws (B, n, K) -> (B, K)`` float64, each row summing to 1.

    The Monte-Carlo estimate of ``P(action k has the largest score)`` from ``n`` score draws per
    row (ties go to the lowest index, which continuous draws hit with probability 0).
    """
    n_rows, n_draws, n_actions = draws.shape
    winners = np.argmax(draws, axis=2)
    if n_rows > 1:
        winners += n_actions * np.arange(n_rows)[:, None]
    counts = np.bincount(winners.ravel(), minlength=n_rows * n_actions)
    return counts.reshape(n_rows, n_actions) / n_draws


def greedy_mask(scores: np.ndarray, best: np.ndarray | None = None) -> np.ndarray:
    """``(B, K)`` bool: the actions whose score ties the row maximum (see :data:`TIE_RTOL`).

    ``best`` (``(B, 1)``), the row maxima, may be passed when already known. Entries equal to
    ``-inf`` (masked actions) are never in the mask unless the row has no finite score.
    """
    if scores.shape[0] == 1 and best is None:  # one user: the same arithmetic on a Python float
        top = float(scores.max())
        return scores >= top - TIE_RTOL * max(1.0, abs(top))
    if best is None:
        best = scores.max(axis=1, keepdims=True)
    tol = TIE_RTOL * np.maximum(1.0, np.abs(best))
    return scores >= best - tol


def greedy_probs(scores: np.ndarray) -> np.ndarray:
    """The greedy distribution ``(B, K)``: one-hot on the argmax, ties split evenly."""
    mask = greedy_mask(scores)
    return mask / mask.sum(axis=1, keepdims=True)


def greedy_act(scores: np.ndarray, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Draw from :func:`greedy_probs` without building it: argmax, ties broken uniformly by ``rng``.

    ``rng`` is consumed only by rows that have ties. Pscores are ``1 / n_ties``, bit-for-bit the
    entries of :func:`greedy_probs`.
    """
    n_rows = scores.shape[0]
    actions = scores.argmax(axis=1)
    if n_rows == 1:
        mask = greedy_mask(scores)
    else:
        mask = greedy_mask(scores, scores[np.arange(n_rows), actions][:, None])
    if np.count_nonzero(mask) == n_rows:  # no ties anywhere: the argmax is the only maximum
        return actions, np.ones(n_rows)
    n_ties = mask.sum(axis=1)
    rows = np.flatnonzero(n_ties > 1)
    which = (rng.random(len(rows)) * n_ties[rows]).astype(np.int64)  # the which-th tied action
    rank = np.cumsum(mask[rows], axis=1)
    actions[rows] = (rank <= which[:, None]).sum(axis=1)
    return actions, 1.0 / n_ties


# --------------------------------------------------------------------------- base class


class BasePolicy:
    """Shared machinery for the built-in agents: argument checks, context checks, sampling, slates.

    Subclasses implement :meth:`action_probs` and :meth:`update`; :meth:`act` defaults to one
    inverse-CDF draw per row from :meth:`action_probs`, which subclasses override when a draw is
    cheaper than the whole distribution.

    Attributes:
        n_actions: number of actions ``K``.
        dim: context dimension ``d`` (``None``: any, the policy ignores contexts).
        name: the class name, used in messages and reports.
        rng: the policy's own generator, used by :meth:`act` when no ``rng`` is passed.
        slate_rule: how :meth:`act_slate` restricts the slate base position by position, for
            its item-position propensities (:class:`~recsim_causal.agents.slate.OwnSlate`):
            ``plackett_luce`` (renormalized), ``greedy`` or ``epsilon_greedy`` (scores).
    """

    slate_rule: str | None = "plackett_luce"

    def __init__(self, n_actions: int, dim: int | None = None, seed: int | None = 0) -> None:
        owner = type(self).__name__
        self.n_actions = check_int(owner, "n_actions", n_actions, 1)
        self.dim = None if dim is None else check_int(owner, "dim", dim, 1)
        self.seed = check_seed(owner, seed)
        self.rng = np.random.default_rng(self.seed)
        self._entropy = np.random.SeedSequence(self.seed).entropy
        self._params: dict[str, Any] = {"n_actions": self.n_actions, "dim": self.dim, "seed": self.seed}

    @property
    def name(self) -> str:
        return type(self).__name__

    def _derived_rng(self, *key: int) -> np.random.Generator:
        """A generator for the policy's internal Monte-Carlo draws: fixed by the seed and ``key``,
        independent of :attr:`rng` and of whatever ``rng`` callers pass to :meth:`act`."""
        return np.random.default_rng(np.random.SeedSequence(self._entropy, spawn_key=(1, *key)))

    def __repr__(self) -> str:
        order = list(inspect.signature(type(self)).parameters)
        keys = sorted(self._params, key=lambda k: order.index(k) if k in order else len(order))
        args = ", ".join(f"{k}={self._params[k]!r}" for k in keys)
        return f"{self.name}({args})"

    # ---- contract -------------------------------------------------------------------------

    def action_probs(self, contexts: np.ndarray) -> np.ndarray:  # pragma: no cover - abstract
        raise NotImplementedError

    def act(
        self, contexts: np.ndarray, rng: np.random.Generator | None = None
    ) -> tuple[np.ndarray, np.ndarray]:
        """One action per context, drawn with ``rng`` (default: the policy's own), and its pscore."""
        return sample_categorical(self.action_probs(contexts), self.rng if rng is None else rng)

    def update(self, contexts: np.ndarray, actions: np.ndarray, rewards: np.ndarray) -> None:  # pragma: no cover
        raise NotImplementedError

    # ---- slates ---------------------------------------------------------------------------

    def act_slate(
        self, contexts: np.ndarray, slate_size: int, rng: np.random.Generator | None = None
    ) -> tuple[np.ndarray, np.ndarray]:
        """A slate of ``slate_size`` distinct actions per context, top to bottom.

        Plackett-Luce: position ``l`` draws from the policy's distribution restricted to the
        actions not already in the slate, renormalized. Score-based policies restrict their score
        map instead (greedy: the best remaining action; softmax: exactly Plackett-Luce; see
        :class:`ScorePolicy`). If a row's remaining probability mass is 0 (a one-hot or sparse
        distribution), the remaining positions are filled uniformly at random.

        Returns ``slates (B, L)`` int64 and ``pscores (B, L)`` float64, ``pscores[i, l]`` being the
        probability of ``slates[i, l]`` at position ``l`` given the actions above it, so the
        probability of the whole slate is ``pscores[i].prod()``. Vectorized over users; a loop over
        the ``L`` positions.
        """
        rng = self.rng if rng is None else rng
        slate_size = check_int(self.name, "slate_size", slate_size, 1)
        if slate_size > self.n_actions:
            raise ValueError(f"{self.name}: slate_size must be <= n_actions={self.n_actions}, got {slate_size}")
        base = self._slate_base(contexts)
        n_rows = base.shape[0]
        taken = np.zeros((n_rows, self.n_actions), dtype=bool)
        slates = np.empty((n_rows, slate_size), dtype=np.int64)
        pscores = np.empty((n_rows, slate_size), dtype=np.float64)
        rows = np.arange(n_rows)
        for pos in range(slate_size):
            probs = self._position_probs(base, taken)
            slates[:, pos], pscores[:, pos] = sample_categorical(probs, rng)
            taken[rows, slates[:, pos]] = True
        return slates, pscores

    def _slate_base(self, contexts: np.ndarray) -> np.ndarray:
        """What :meth:`_position_probs` restricts, computed once per slate: here the distribution."""
        return self.action_probs(contexts)

    def _position_probs(self, base: np.ndarray, taken: np.ndarray) -> np.ndarray:
        """The distribution over the actions not ``taken``: ``base`` restricted and renormalized."""
        return restricted_probs(base, taken)

    # ---- input helpers --------------------------------------------------------------------

    def _contexts(self, contexts: np.ndarray) -> np.ndarray:
        """``contexts`` as a float64 ``(B, d)`` array, checked against ``dim``."""
        x = np.asarray(contexts, dtype=np.float64)
        if x.ndim != 2:
            raise ValueError(f"{self.name}: contexts must be a 2-D array (B, d), got shape {x.shape}")
        if self.dim is not None and x.shape[1] != self.dim:
            raise ValueError(f"{self.name}: contexts have {x.shape[1]} features, expected dim={self.dim}")
        return x

    def _n_rows(self, contexts: np.ndarray) -> int:
        """The batch size of contexts a context-free policy is given (only the shape is checked)."""
        shape = np.shape(contexts)
        if len(shape) != 2:
            raise ValueError(f"{self.name}: contexts must be a 2-D array (B, d), got shape {shape}")
        if self.dim is not None and shape[1] != self.dim:
            raise ValueError(f"{self.name}: contexts have {shape[1]} features, expected dim={self.dim}")
        return shape[0]

    def _feedback(
        self, contexts: np.ndarray, actions: np.ndarray, rewards: np.ndarray, *, need_contexts: bool = True
    ) -> tuple[np.ndarray | None, np.ndarray, np.ndarray]:
        """Checked ``(contexts float64 (B, d) or None, actions int64 (B,), rewards float64 (B,))``."""
        if need_contexts:
            x = self._contexts(contexts)
            n_rows = x.shape[0]
        else:
            x = None
            n_rows = self._n_rows(contexts)
        a = np.asarray(actions)
        r = np.asarray(rewards, dtype=np.float64)
        if a.shape != (n_rows,) or r.shape != (n_rows,):
            raise ValueError(
                f"{self.name}.update: expected actions and rewards of shape ({n_rows},), "
                f"got {a.shape} and {r.shape}"
            )
        if a.dtype.kind not in "iu":
            raise ValueError(f"{self.name}.update: actions must be integers, got dtype {a.dtype}")
        if n_rows == 1:  # the one-user hot path: scalar checks
            bad_action = not 0 <= a[0] < self.n_actions
            bad_reward = not math.isfinite(r[0])
        elif n_rows:
            bad_action = a.min() < 0 or a.max() >= self.n_actions
            bad_reward = not np.isfinite(r).all()
        else:
            bad_action = bad_reward = False
        if bad_action:
            raise ValueError(f"{self.name}.update: actions must be in [0, {self.n_actions}), got {a.min()}..{a.max()}")
        if bad_reward:
            raise ValueError(f"{self.name}.update: rewards must be finite")
        return x, a.astype(np.int64, copy=False), r

    # ---- persistence ----------------------------------------------------------------------

    def state_dict(self) -> dict[str, np.ndarray]:
        """The learned state as named arrays (constructor arguments are kept separately)."""
        return {}

    def load_state_dict(self, state: dict[str, np.ndarray]) -> None:
        """Restore what :meth:`state_dict` returned."""

    def save(self, path: str) -> None:
        """Write constructor arguments and learned state to an ``.npz`` file."""
        meta = json.dumps({"class": self.name, "params": self._params, "entropy": str(self._entropy)})
        np.savez(path, __meta__=np.array(meta), **self.state_dict())

    @classmethod
    def load(cls, path: str) -> "BasePolicy":
        """Rebuild a policy written by :meth:`save`; ``cls`` must be its class."""
        where = f"{cls.__name__}.load: {path}"
        try:
            data = np.load(path, allow_pickle=False)
            meta = json.loads(str(data["__meta__"]))
        except (OSError, ValueError, KeyError, EOFError) as e:
            raise ValueError(f"{where}: not a file written by {cls.__name__}.save ({type(e).__name__})") from None
        with data:
            if not isinstance(meta, dict):
                raise ValueError(f"{where}: its metadata is not a mapping")
            config_check_keys(meta, ("class", "params", "entropy"), where)
            if meta.get("class") != cls.__name__:
                raise ValueError(f"{where} holds a {meta.get('class')}, not a {cls.__name__}")
            policy = cls(**meta["params"])
            policy._entropy = int(meta["entropy"])
            state = {k: data[k] for k in data.files if k != "__meta__"}
            expected = policy.state_dict()  # what a policy of these parameters holds: names and shapes
            config_check_keys(state, expected, f"{where}: state")
            for key, arr in expected.items():
                if key not in state:
                    raise ValueError(f"{where}: state '{key}' is missing")
                got, numeric = state[key], np.asarray(arr).dtype.kind in "biuf"
                if np.shape(got) != np.shape(arr) or (np.asarray(got).dtype.kind in "biuf") != numeric:
                    raise ValueError(f"{where}: state '{key}' is {np.asarray(got).dtype} of shape {np.shape(got)}, "
                                     f"expected {'numbers' if numeric else np.asarray(arr).dtype} of shape {np.shape(arr)}")
                if np.asarray(got).dtype.kind == "f" and not np.isfinite(got).all():
                    raise ValueError(f"{where}: state '{key}' holds NaN or inf")
            policy.load_state_dict(state)
        return policy


class ScorePolicy(BasePolicy):
    """A policy whose distribution is a map of per-action scores: greedy, epsilon-greedy, softmax.

    Subclasses implement :meth:`scores` ``(B, d) -> (B, K)`` and :meth:`probs_from_scores`, which
    must give probability 0 to entries equal to ``-inf``; slates then restrict the score map to
    the remaining actions (masking the taken ones with ``-inf``) rather than renormalizing;
    a subclass names that rule in ``slate_rule`` (unknown here).
    """

    slate_rule = None

    def scores(self, contexts: np.ndarray) -> np.ndarray:  # pragma: no cover - abstract
        raise NotImplementedError

    def probs_from_scores(self, scores: np.ndarray) -> np.ndarray:  # pragma: no cover - abstract
        raise NotImplementedError

    def action_probs(self, contexts: np.ndarray) -> np.ndarray:
        """``(B, d) -> (B, K)``: :meth:`probs_from_scores` of :meth:`scores`."""
        return self.probs_from_scores(self.scores(contexts))

    def _slate_base(self, contexts: np.ndarray) -> np.ndarray:
        return self.scores(contexts)

    def _position_probs(self, base: np.ndarray, taken: np.ndarray) -> np.ndarray:
        return self.probs_from_scores(np.where(taken, -np.inf, base))
