"""Off-policy learning from a slate log: a Plackett-Luce policy trained by a slate estimator.

A slate log is a :class:`~recsim_causal.data.LoggedFeedback` with ``position``: one row per
(slate, slot), a slate's rows consecutive with positions 0..L-1 in order (as the online
experiment with ``env=slate`` writes ``logged.parquet``, and as :func:`slate_feedback` builds
one), each row's ``pscore`` the logger's probability of the row's item at its position *given
the items above it* (what :meth:`~recsim_causal.agents.base.BasePolicy.act_slate` returns), so
the probability of a slate's prefix a_1..a_l is the product of its rows' pscores down to l.

The learned policy is factorized: a score f(x, a) per item (the :class:`NetworkPolicy` of the
one-item learners), and the slate is Plackett-Luce over ``softmax(f / temperature)``: position l
draws from the softmax restricted to the items not yet shown, so

    pi(a_1..a_l | x) = prod_{k <= l} exp f(x, a_k) / sum_{a not in a_1..a_{k-1}} exp f(x, a),

which is exactly what the policy's ``act_slate`` and a
:class:`~recsim_causal.agents.slate.PlackettLuceSlate` over it sample (``greedy=True``: the
top-L items). Training maximizes, over the log's n slates, with prefix weights
w_{1:l} = pi(a_1..a_l | x) / pi_b(a_1..a_l | x) clipped at ``max_weight``:

- ``"ipw"``: the reward-interaction IPS estimate (RIPS, McInerney et al., KDD 2020)
  (1/n) sum_i sum_l w_{1:l} r_i(l): unbiased when a slot's reward depends on the items down to
  it (the cascade model, and the position-based model).
- ``"snipw"``: (1/n) sum_i sum_l w_{1:l} (r_i(l) - lambda_l), the BanditNet baseline per slot
  (``lambda_=None``: each position's mean logged reward).
- ``"dr"``: Cascade-DR (Kiyohara et al., WSDM 2022), (1/n) sum_i sum_l [w_{1:l} (r_i(l) -
  qhat_l(x, a_l)) + w_{1:l-1} sum_a pi(a | x, a_1..a_{l-1}) qhat_l(x, a)], qhat_l a per-position
  slot-reward model cross-fitted on the log.

(``"dm"`` is :func:`~recsim_causal.learn.fit`'s: greedy on a reward model of the pooled slots.)
Each objective, unclipped, equals the project's slate estimator (``SlateRewardInteractionIPS``,
``SlateCascadeDoublyRobust``) of the Plackett-Luce policy on the log.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from recsim_causal.data import LoggedFeedback

__all__ = ["SLATE_LEARNERS", "SlateData", "SlateObjective", "is_slate_log", "pl_conditional_log_probs",
           "slate_data", "slate_feedback", "slate_value"]


def is_slate_log(fb: LoggedFeedback) -> bool:
    """A log with more than one position (a one-slot ``position`` column is a one-item log)."""
    return fb.position is not None and fb.n_rounds > 0 and int(fb.position.max()) > 0


@dataclass
class SlateData:
    """A slate log, wide: ``context`` (n, d), ``slates`` (n, L), ``slot_reward`` (n, L) and the
    logger's prefix propensities ``pscore_cascade`` (n, L) = pi_b(a_1..a_l | x)."""

    context: np.ndarray
    slates: np.ndarray
    slot_reward: np.ndarray
    pscore_cascade: np.ndarray

    @property
    def n_slates(self) -> int:
        return len(self.slates)

    @property
    def slate_size(self) -> int:
        return self.slates.shape[1]


def slate_data(fb: LoggedFeedback) -> SlateData:
    """The slates of a long slate log (module doc), checked: each slate's rows in position order
    0..L-1, one context per slate, no item twice in a slate."""
    if fb.position is None:
        raise ValueError("log.position: a slate log needs the slot of each row (0 = top)")
    L = int(fb.position.max()) + 1
    n_rows = fb.n_rounds
    pos = fb.position
    if n_rows % L or not np.array_equal(pos, np.tile(np.arange(L), n_rows // L)):
        bad = np.flatnonzero(pos != np.tile(np.arange(L), -(-n_rows // L))[:n_rows])
        row = int(bad[0]) if bad.size else n_rows
        raise ValueError(f"log.position: expected each slate's {L} rows consecutive with positions 0..{L - 1} "
                         f"in order; row {row} breaks it")  # fmt: skip
    n = n_rows // L
    x = fb.context.reshape(n, L, -1)
    if not (x == x[:, :1]).all():
        raise ValueError(f"log.context: the {L} rows of a slate must share one context; slate "
                         f"{int(np.flatnonzero(~(x == x[:, :1]).all(axis=(1, 2)))[0])} does not")  # fmt: skip
    slates = fb.action.reshape(n, L)
    dup = (np.sort(slates, axis=1)[:, 1:] == np.sort(slates, axis=1)[:, :-1]).any(axis=1)
    if dup.any():
        raise ValueError(f"log.action: slate {int(np.flatnonzero(dup)[0])} shows an item twice")
    return SlateData(x[:, 0], slates, fb.reward.reshape(n, L), np.cumprod(fb.pscore.reshape(n, L), axis=1))


def slate_feedback(context: np.ndarray, slates: np.ndarray, slot_reward: np.ndarray, pscore_cascade: np.ndarray,
                   n_actions: int, **extra: Any) -> LoggedFeedback:  # fmt: skip
    """Wide slates -> the long slate log :func:`slate_data` reads: one row per slot, ``pscore``
    the conditional of each slot given the items above (the ratio of successive prefix
    propensities). ``extra``: other LoggedFeedback fields (``action_context``, ``metadata``)."""
    slates = np.asarray(slates)
    n, L = slates.shape
    casc = np.asarray(pscore_cascade, dtype=np.float64)
    cond = casc / np.concatenate([np.ones((n, 1)), casc[:, :-1]], axis=1)
    return LoggedFeedback(context=np.repeat(np.asarray(context, dtype=np.float64), L, axis=0),
                          action=slates.reshape(-1), reward=np.asarray(slot_reward, dtype=np.float64).reshape(-1),
                          pscore=cond.reshape(-1), position=np.tile(np.arange(L), n), n_actions=n_actions,
                          **extra)  # fmt: skip


def pl_conditional_log_probs(logits: Any, slates: Any) -> Any:
    """log pi(. | x, a_1..a_{l-1}) of the Plackett-Luce policy softmax(logits), at every
    position of ``slates``: (B, L, K) torch (``-inf`` on the items above)."""
    import torch

    B, L = slates.shape
    taken = torch.zeros_like(logits, dtype=torch.bool)
    out = []
    for pos in range(L):
        out.append(torch.log_softmax(logits.masked_fill(taken, float("-inf")), dim=1))
        taken = taken.scatter(1, slates[:, pos : pos + 1], True)
    return torch.stack(out, dim=1)


@dataclass(frozen=True)
class SlateObjective:
    """A slate objective: ``value(cond_log_probs (B, L, K), batch) -> (B,)`` per-slate terms of the
    estimate training maximizes. ``needs_q_hat``: the batch carries ``q_hat`` (B, L, K)."""

    value: Callable[..., Any]
    needs_q_hat: bool = False


def _prefix_weights(logp: Any, b: dict) -> tuple[Any, Any]:
    """(w_{1:l} (B, L), the conditionals' log probs of the logged items (B, L)): the prefix
    weights, each clipped at ``max_weight``."""
    import torch

    own = logp.gather(2, b["slates"][:, :, None])[:, :, 0]
    w = torch.exp(torch.cumsum(own, dim=1) - torch.log(b["pscore_cascade"]))
    return w.clamp(max=b["max_weight"]), own


def _rips(logp: Any, b: dict) -> Any:
    return (_prefix_weights(logp, b)[0] * b["reward"]).sum(dim=1)


def _snrips(logp: Any, b: dict) -> Any:
    return (_prefix_weights(logp, b)[0] * (b["reward"] - b["lambda_"])).sum(dim=1)


def _cascade_dr(logp: Any, b: dict) -> Any:
    import torch

    w, _ = _prefix_weights(logp, b)
    w_above = torch.cat([torch.ones_like(w[:, :1]), w[:, :-1]], dim=1)
    q = b["q_hat"]  # (B, L, K)
    q_logged = q.gather(2, b["slates"][:, :, None])[:, :, 0]
    expected = (torch.exp(logp) * q).sum(dim=2)  # sum_a pi(a | x, a_<l) qhat_l(x, a); exp(-inf) = 0
    return (w * (b["reward"] - q_logged) + w_above * expected).sum(dim=1)


#: name -> SlateObjective: what ``fit(log, learner=name)`` maximizes on a slate log.
SLATE_LEARNERS: dict[str, SlateObjective] = {
    "ipw": SlateObjective(_rips),
    "snipw": SlateObjective(_snrips),
    "dr": SlateObjective(_cascade_dr, needs_q_hat=True),
}


def slate_value(world: Any, policy: Any, n_users: int, rng: np.random.Generator, *,
                batch: int = 2048) -> tuple[float, float]:  # fmt: skip
    """The true value of a slate policy on ``n_users`` fresh users of ``world`` and its standard
    error: per user, one slate drawn from the policy (a Policy's ``act_slate``, or a
    :class:`~recsim_causal.agents.slate.SlatePolicy`), valued by the SCM's exact expected slot
    rewards E[sum_l r_l | x, do(slate)] (exact for a deterministic policy; otherwise the
    standard error is over users and the policy's draws)."""
    L = world.slate_size
    values = []
    for start in range(0, n_users, batch):
        users = world.sample_users(min(batch, n_users - start), rng)
        x = np.asarray(world.observe(users), dtype=np.float64)
        if hasattr(policy, "act_slate"):
            slates, _ = policy.act_slate(x, L, rng)
        else:
            slates = policy.sample(policy.probs(x), rng)
        values.append(np.asarray(world.expected_slate_reward(users, slates), dtype=np.float64).sum(axis=1))
    v = np.concatenate(values)
    return float(v.mean()), float(v.std(ddof=1) / np.sqrt(len(v)))
