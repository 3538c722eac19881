"""Off-policy learning from a one-item log: ``fit(log, learner=...) -> Policy``.

A learner maximizes an off-policy estimate of its own value on the log (x_i, a_i, r_i, p_i),
p_i = pi_b(a_i | x_i), w_i(pi) = pi(a_i | x_i) / p_i:

- ``"ipw"``: V_IPW(pi) = (1/n) sum_i w_i r_i (counterfactual risk minimization; OBP's
  ``NNPolicyLearner(off_policy_objective="ipw")``).
- ``"snipw"``: the self-normalized estimate made trainable by a Lagrangian baseline lambda,
  (1/n) sum_i w_i (r_i - lambda) (BanditNet, Joachims, Swaminathan & de Rijke, ICLR 2018;
  POEM's self-normalized CRM, Swaminathan & Joachims, NeurIPS 2015). ``lambda_=None``: the log's
  mean reward.
- ``"dr"``: V_DR(pi) = (1/n) sum_i [sum_a pi(a|x_i) qhat(x_i, a) + w_i (r_i - qhat(x_i, a_i))]
  with a cross-fitted reward model qhat (Dudik, Langford & Li, ICML 2011).
- ``"dm"``: no policy network: greedy (or softmax) on a reward model fitted to the log (OBP's
  ``QLearner``).

The first three train a :class:`~recsim_causal.learn.policies.NetworkPolicy` (``policy="linear"``:
a linear softmax policy; ``"mlp"``: an MLP) by Adam on minibatches, with an L2 penalty
``weight_decay``; autograd of the estimate gives the same gradient as OBP's policy-gradient
form (sum w r grad log pi). Add a learner with :func:`register_learner`.

A slate log (``position`` with several slots, :mod:`recsim_causal.learn.slate`) trains the same
network as a Plackett-Luce slate policy by the slate form of each objective: ``"ipw"`` the
reward-interaction IPS estimate of the slate's value, ``"snipw"`` with a baseline per slot,
``"dr"`` Cascade-DR; ``"dm"`` is greedy on a reward model of the pooled slots. The policy's
``act_slate`` (or a ``PlackettLuceSlate`` over it) then deals the slates it was trained for.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from recsim_causal.agents.base import check_float, check_int, check_seed
from recsim_causal.data import LoggedFeedback, load_parquet
from recsim_causal.ope.reward_models import RegressionModel, fit_predict
from recsim_causal.threads import torch_threads

from .policies import NetworkPolicy, RewardModelPolicy
from .slate import SLATE_LEARNERS, is_slate_log, pl_conditional_log_probs, slate_data

__all__ = ["LEARNERS", "POLICIES", "Objective", "as_feedback", "fit", "item_features", "register_learner"]

#: policy name -> hidden layer sizes of the :class:`NetworkPolicy` (``hidden_sizes`` overrides the MLP's)
POLICIES: dict[str, tuple[int, ...]] = {"linear": (), "mlp": (64,)}


def as_feedback(log: Any) -> LoggedFeedback:
    """A log as the OPE API takes it: a LoggedFeedback, an object with ``.feedback`` (a simulated
    log), or a path to a Parquet file written by :func:`recsim_causal.data.save_parquet`."""
    if isinstance(log, LoggedFeedback):
        return log
    if isinstance(getattr(log, "feedback", None), LoggedFeedback):
        return log.feedback
    if isinstance(log, (str, Path)):
        return load_parquet(log)
    raise ValueError(f"log: expected a LoggedFeedback, a simulated log or a Parquet path, got {type(log).__name__}")


def item_features(log: Any) -> np.ndarray | None:
    """The items' features of a log: its ``action_context``, else a simulated log's catalog
    features (as in its OBP arrays, ``to_obp()``), else None."""
    fb = as_feedback(log)
    if fb.action_context is not None:
        return fb.action_context
    world = getattr(log, "world", None)
    if world is not None:  # as a simulated log's to_obp() gives them, for every setting
        feats = world.catalog.features
        return np.concatenate([np.asarray(feats[k], dtype=np.float64).reshape(world.n_items, -1) for k in sorted(feats)],
                              axis=1)  # fmt: skip
    return None


@dataclass(frozen=True)
class Objective:
    """An off-policy objective: ``value(pi, batch) -> (B,)`` per-round terms of the estimate that
    training maximizes (their mean). ``needs_q_hat``: the batch carries ``q_hat`` (B, K)."""

    value: Callable[..., Any]
    needs_q_hat: bool = False


def _weight(pi: Any, b: dict) -> Any:
    """w_i = pi(a_i | x_i) / p_i, clipped at ``b["max_weight"]`` (Strehl et al., NeurIPS 2010)."""
    return (pi.gather(1, b["action"][:, None])[:, 0] / b["pscore"]).clamp(max=b["max_weight"])


def _ipw(pi: Any, b: dict) -> Any:
    return _weight(pi, b) * b["reward"]


def _snipw(pi: Any, b: dict) -> Any:
    return _weight(pi, b) * (b["reward"] - b["lambda_"])


def _dr(pi: Any, b: dict) -> Any:
    q, a = b["q_hat"], b["action"][:, None]
    return (pi * q).sum(dim=1) + _weight(pi, b) * (b["reward"] - q.gather(1, a)[:, 0])


#: name -> Objective; ``"dm"`` is not here: it fits no policy network (see :func:`fit`).
LEARNERS: dict[str, Objective] = {
    "ipw": Objective(_ipw),
    "snipw": Objective(_snipw),
    "dr": Objective(_dr, needs_q_hat=True),
}


def register_learner(name: str, objective: Objective) -> None:
    """Add an objective under ``name`` (usable as ``fit(log, learner=name)``)."""
    if name == "dm" or name in LEARNERS:
        raise ValueError(f"register_learner: '{name}' is taken (known: dm, {', '.join(LEARNERS)})")
    LEARNERS[name] = objective


def _reward_model(fb: LoggedFeedback, base_model: str, features: str, seed: int | None) -> RegressionModel:
    model = RegressionModel(base_model=base_model, n_actions=fb.n_actions, features=features,
                            random_state=seed)  # fmt: skip
    return model.fit(fb.context, fb.action, fb.reward, fb.pscore)


def fit(
    log: Any,
    learner: str = "dr",
    *,
    policy: str = "linear",
    hidden_sizes: tuple[int, ...] | None = None,
    n_epochs: int = 30,
    batch_size: int = 512,
    learning_rate: float = 0.05,
    weight_decay: float = 1e-4,
    lambda_: float | None = None,
    max_weight: float | None = 10.0,
    action_context: np.ndarray | None = None,
    reward_model: str = "logistic",
    reward_features: str = "interaction",
    n_folds: int = 2,
    temperature: float = 1.0,
    greedy: bool | None = None,
    seed: int | None = 0,
    device: str | None = None,
) -> NetworkPolicy | RewardModelPolicy:
    """Learn a policy from a logged one-item log by maximizing an off-policy estimate of its value.

    Args:
        log: a LoggedFeedback, a simulated log (``.feedback``) or a Parquet path; a slate log
            (``slate_id``) trains a Plackett-Luce slate policy by the slate form of ``learner``
            (:mod:`recsim_causal.learn.slate`: weights of each slate's prefix, ``lambda_`` per slot).
        learner: ``"ipw" | "snipw" | "dr"`` (a :data:`LEARNERS` objective) or ``"dm"``.
        policy: ``"linear"`` (linear softmax) or ``"mlp"``; ``hidden_sizes`` overrides the layers.
        n_epochs, batch_size, learning_rate, weight_decay: Adam on shuffled minibatches.
        lambda_: snipw's baseline (``None``: the log's mean reward).
        reward_model, reward_features, n_folds: qhat for ``"dr"`` (cross-fitted on the log with
            ``n_folds``) and ``"dm"`` (fitted on the whole log), see :class:`RegressionModel`.
        temperature: the deployed softmax's temperature (dm: only when ``greedy=False``).
        greedy: deploy the argmax of the learned scores (``None``: greedy for ``"dm"``, the
            learned softmax for the others).
        max_weight: clip the importance weights at this value in the objective (``None``: no
            clipping). Unclipped, a flexible policy overfits the rare rounds of large weight (its
            estimate on its own training log can exceed any possible value).
        action_context: (K, m) item features (default: the log's ``action_context``, or a
            simulated log's catalog features): the
            policy's scores are then bilinear in (context, item features), see
            :class:`NetworkPolicy`.
        seed: initialization and minibatch order.
        device: torch device (``None``: cuda when available, else cpu).

    Returns:
        A frozen :class:`~recsim_causal.agents.Policy` over ``log.n_actions`` actions.
    """
    fb = as_feedback(log)
    owner = "fit"
    seed = check_seed(owner, seed)
    temperature = check_float(owner, "temperature", temperature, low=0.0, low_open=True)
    if fb.n_rounds == 0:
        raise ValueError("fit: log has no rounds")
    if learner == "dm":
        model = _reward_model(fb, reward_model, reward_features, seed)
        return RewardModelPolicy(fb.n_actions, fb.dim_context, seed, model=model, temperature=temperature,
                                 greedy=True if greedy is None else greedy)  # fmt: skip
    if learner not in LEARNERS:
        raise ValueError(f"fit: learner must be one of dm, {', '.join(LEARNERS)}; got {learner!r}")
    if policy not in POLICIES:
        raise ValueError(f"fit: policy must be one of {', '.join(POLICIES)}; got {policy!r}")
    n_epochs = check_int(owner, "n_epochs", n_epochs, 1)
    batch_size = check_int(owner, "batch_size", batch_size, 1)
    learning_rate = check_float(owner, "learning_rate", learning_rate, low=0.0, low_open=True)
    weight_decay = check_float(owner, "weight_decay", weight_decay, low=0.0)
    max_weight = float("inf") if max_weight is None else check_float(owner, "max_weight", max_weight, low=0.0,
                                                                                       low_open=True)
    ac = item_features(log) if action_context is None else action_context
    net = NetworkPolicy(fb.n_actions, fb.dim_context, seed, temperature=temperature, greedy=bool(greedy),
                        device=device, action_context=ac,
                        hidden_sizes=POLICIES[policy] if hidden_sizes is None else tuple(hidden_sizes))  # fmt: skip
    lam = None if lambda_ is None else check_float(owner, "lambda_", lambda_)
    q_opts = dict(base_model=reward_model, features=reward_features, n_folds=n_folds, random_state=seed)
    if is_slate_log(fb):
        arrays, value = _slate_arrays(fb, learner, lam, q_opts)
    else:
        objective = LEARNERS[learner]
        arrays = {"context": fb.context, "action": fb.action, "reward": fb.reward, "pscore": fb.pscore}
        if objective.needs_q_hat:
            arrays["q_hat"] = fit_predict(fb.context, fb.action, fb.reward, fb.n_actions, **q_opts)[:, :, 0]
        arrays["lambda_"] = float(fb.reward.mean()) if lam is None else lam

        def value(logits: Any, batch: dict) -> Any:
            import torch

            return objective.value(torch.softmax(logits, dim=1), batch)

    net.standardize_with(arrays["context"])
    with torch_threads(1 if net.device.type == "cpu" else None):  # small layers: one thread is fastest
        _train(net, value, arrays, {"max_weight": max_weight}, n_epochs, batch_size, learning_rate, weight_decay, seed)
    return net


def _slate_arrays(fb: LoggedFeedback, learner: str, lam: float | None, q_opts: dict) -> tuple[dict, Callable]:
    """A slate log's training arrays, one row per slate, and the slate objective on logits."""
    if learner not in SLATE_LEARNERS:
        raise ValueError(f"fit: a slate log's learner must be one of dm, {', '.join(SLATE_LEARNERS)}; got {learner!r}")
    objective = SLATE_LEARNERS[learner]
    data = slate_data(fb)
    n, L = data.slates.shape
    arrays = {"context": data.context, "slates": data.slates, "reward": data.slot_reward,
              "pscore_cascade": data.pscore_cascade,
              "lambda_": data.slot_reward.mean(axis=0) if lam is None else np.full(L, lam)}  # fmt: skip
    if objective.needs_q_hat:  # qhat_l(x, a) per position, cross-fitted by slate (a slate's rows share a fold)
        q = fit_predict(fb.context, fb.action, fb.reward, fb.n_actions, position=fb.position, len_list=L,
                        groups=np.repeat(np.arange(n), L), **q_opts)  # fmt: skip
        arrays["q_hat"] = q[np.arange(n * L), :, fb.position].reshape(n, L, fb.n_actions)

    def value(logits: Any, batch: dict) -> Any:
        return objective.value(pl_conditional_log_probs(logits, batch["slates"]), batch)

    return arrays, value


def _train(net: NetworkPolicy, value: Callable[..., Any], arrays: dict[str, np.ndarray], consts: dict,
           n_epochs: int, batch_size: int, learning_rate: float, weight_decay: float, seed: int | None) -> None:  # fmt: skip
    """Adam ascent on the mean of ``value(logits, batch)`` (per-row terms) over shuffled
    minibatches of ``arrays``' rows (``context`` standardized; an array of another length is
    passed whole, e.g. a per-position baseline)."""
    import torch

    dev = net.device
    n = len(arrays["context"])

    def tensor(k: str, v: np.ndarray) -> Any:
        v = np.asarray(v)
        return torch.as_tensor(v, device=dev) if v.dtype.kind in "iu" else torch.as_tensor(v, dtype=torch.float32, device=dev)

    data = {"z": net.tensor(arrays["context"])}
    whole = dict(consts)
    for k, v in arrays.items():
        if k == "context":
            continue
        if np.ndim(v) and len(v) == n:
            data[k] = tensor(k, v)
        else:
            whole[k] = tensor(k, v) if np.ndim(v) else float(v)
    opt = torch.optim.AdamW(net.parameters(), lr=learning_rate, weight_decay=weight_decay)
    gen = torch.Generator().manual_seed(0 if seed is None else int(seed))
    net.net.train()
    for _ in range(n_epochs):
        perm = torch.randperm(n, generator=gen).to(dev)
        for start in range(0, n, batch_size):
            idx = perm[start : start + batch_size]
            batch = {k: v[idx] for k, v in data.items()}
            batch.update(whole)
            loss = -value(net.logits(batch["z"]), batch).mean()
            opt.zero_grad()
            loss.backward()
            opt.step()
    net.net.eval()
