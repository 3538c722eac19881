"""Off-policy learning from a slate log: a Plackett-Luce policy trained by a slate estimator.

A slate log is the project's (OBP's long format, ``LoggedFeedback.setting == "slate"``): one row
per (slate, slot) with ``slate_id``, ``position`` (0..L-1, a slate's rows contiguous and in
order) and the logger's ``pscore_cascade``, pi_b(a_1..a_l | x), the probability of the slate's
items down to the row's slot, as ``simulate_log(..., slate_size=L)``, ``experiment=ope
env=slate`` (its ``logged.parquet``) and :meth:`recsim_causal.ope.slate_log.SlateLog.feedback`
write it.

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
from recsim_causal.ope.slate_log import SlateLog

__all__ = ["SLATE_LEARNERS", "SlateObjective", "best_slate_value", "is_slate_log", "pl_conditional_log_probs",
           "slate_data", "slate_value"]


def is_slate_log(fb: LoggedFeedback) -> bool:
    """A log of slates (``slate_id`` given)."""
    return fb.setting == "slate"


def slate_data(fb: LoggedFeedback) -> SlateLog:
    """The wide slates of a slate log (one-line errors on a broken layout)."""
    from recsim_causal.ope.slate_log import wide_slates

    return wide_slates(fb)


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
    error: per user, one slate drawn from the policy (a Policy's own ``act_slate``, or a
    :class:`~recsim_causal.agents.slate.SlatePolicy`), valued by the SCM's exact expected slot
    rewards E[sum_l r_l | x, do(slate)] (exact for a deterministic policy; otherwise the
    standard error is over users and the policy's draws). A simulated log's
    ``population_truth`` values a Plackett-Luce slate over the policy's distribution instead
    (exactly, from item-position marginals, under position-based clicks); this one takes the
    slates the policy itself deals -- a greedy score policy's top L by its scores."""
    L = world.slate_size

    def dealt(users: Any, x: np.ndarray) -> np.ndarray:
        if hasattr(policy, "act_slate"):
            return policy.act_slate(x, L, rng)[0]
        return policy.sample(policy.probs(x), rng)

    return _value_of_slates(world, dealt, n_users, rng, batch)


def best_slate_value(world: Any, n_users: int, rng: np.random.Generator, *,
                     batch: int = 2048) -> tuple[float, float]:  # fmt: skip
    """The oracle's value under position-based clicks, as :func:`slate_value`: per fresh user the
    top-L items by expected click, best first (the best slate, by the rearrangement inequality)."""
    return _value_of_slates(
        world, lambda users, x: np.argsort(-np.asarray(world.expected_reward(users)), axis=1)[:, : world.slate_size],
        n_users, rng, batch)


def _value_of_slates(world: Any, choose: Any, n_users: int, rng: np.random.Generator,
                     batch: int) -> tuple[float, float]:  # fmt: skip
    """Mean and s.e. over ``n_users`` fresh users of the exact expected clicks of the slate
    ``choose(users, contexts)`` deals each of them."""
    values = []
    for start in range(0, n_users, batch):
        users = world.sample_users(min(batch, n_users - start), rng)
        slates = choose(users, np.asarray(world.observe(users), dtype=np.float64))
        values.append(np.asarray(world.expected_slate_reward(users, slates), dtype=np.float64).sum(axis=1))
    v = np.concatenate(values)
    return float(v.mean()), float(v.std(ddof=1) / np.sqrt(len(v)))
