"""Offline RL on logged sessions through TorchRL: discrete CQL, discrete IQL, and DQN as the
naive baseline, each returned as a Policy.

    from recsim_causal.learn import fit_sessions
    policy = fit_sessions(log, algorithm="cql")     # log: a LoggedFeedback with trajectory_id

The log's rows are steps (x_t, a_t, r_t) of sessions (``trajectory_id``, time order within a
session); a step's next observation is the session's next row, and a session's last row ends
it (``done``: the user left, or the time budget ran out). The losses are TorchRL's
(``torchrl.objectives``), with their target networks updated softly (Polyak averaging):

- ``"dqn"``: ``DQNLoss`` (double DQN): Q-learning on the log, which trusts Q(x, a) of actions
  the logger never took.
- ``"cql"``: ``DiscreteCQLLoss``: DQN plus the conservative penalty
  logsumexp_a Q(x, a) - Q(x, a_logged), weighted by ``cql_alpha`` (Kumar et al., NeurIPS 2020).
- ``"iql"``: ``DiscreteIQLLoss``: expectile regression of V on Q (``expectile``), Q on
  r + gamma V(x'), and an actor fitted by advantage-weighted regression (``temperature``) --
  never a Q value of an action outside the data (Kostrikov et al., ICLR 2022).

The returned :class:`QPolicy` is greedy on the learned Q (for IQL: on the actor's logits). Why
TorchRL: its losses need only torch and tensordict, which fit the project's stack (d3rlpy, the
other maintained library, pins an older Gymnasium). It is the optional extra ``offline-rl``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from recsim_causal.agents.base import check_float, check_int, check_seed
from recsim_causal.data import LoggedFeedback
from recsim_causal.threads import torch_threads

from .bandit import as_feedback
from .policies import _FrozenScorePolicy, mlp

__all__ = ["ALGORITHMS", "QPolicy", "fit_sessions", "transitions"]


class QPolicy(_FrozenScorePolicy):
    """Greedy (or softmax with ``temperature``, ``greedy=False``) on a torch network's scores
    ``R^d -> R^K`` of the session observation: Q values, or an actor's logits."""

    def __init__(self, n_actions: int, dim: int, seed: int | None = 0, *, net: Any = None,
                 hidden_sizes: tuple[int, ...] | None = None, temperature: float = 1.0, greedy: bool = True,
                 device: Any = "cpu") -> None:  # fmt: skip
        super().__init__(n_actions, dim, seed, temperature, greedy)
        if net is None and hidden_sizes is None:
            raise ValueError(f"{self.name}: net must be a torch module (observation -> K scores), or hidden_sizes "
                             "given for the MLP that load fills")  # fmt: skip
        if net is None:
            import torch

            with torch.random.fork_rng(devices=[]):  # leave the global torch RNG untouched
                net = mlp(self.dim, n_actions, tuple(int(h) for h in hidden_sizes)).to(device)
        self.net, self.device = net, device
        if hidden_sizes is not None:  # the MLP's layers: what save and load need to rebuild it
            self._params.update(hidden_sizes=[int(h) for h in hidden_sizes])

    def scores(self, contexts: np.ndarray) -> np.ndarray:
        import torch

        x = torch.as_tensor(self._contexts(contexts), dtype=torch.float32, device=self.device)
        with torch.no_grad():
            return self.net(x).double().cpu().numpy()

    def state_dict(self) -> dict[str, np.ndarray]:
        return {k: v.detach().cpu().numpy() for k, v in self.net.state_dict().items()}

    def load_state_dict(self, state: dict[str, np.ndarray]) -> None:
        import torch

        self.net.load_state_dict({k: torch.as_tensor(v, device=self.device) for k, v in state.items()})
        self.net.eval()


def transitions(log: LoggedFeedback) -> dict[str, np.ndarray]:
    """(observation, action, reward, next_observation, done) arrays, one per logged step: the next
    observation is the session's next row; a session's last row is done (its next observation
    is a copy of its own and is never used)."""
    if log.trajectory_id is None:
        raise ValueError("log: expected logged sessions (a trajectory_id column); a one-item log: use learn.fit")
    tid = log.trajectory_id
    last = np.r_[tid[1:] != tid[:-1], True]
    nxt = np.where(last[:, None], log.context, np.roll(log.context, -1, axis=0))
    return {"observation": log.context, "action": log.action, "reward": log.reward, "next_observation": nxt,
            "done": last}  # fmt: skip


def _q_learning(cql: bool) -> Callable[..., tuple[Any, Any, Any]]:
    def build(torch: Any, d: int, K: int, hidden: tuple[int, ...], opts: dict) -> tuple[Any, Any, Any]:
        from torchrl.data import OneHot
        from torchrl.modules import QValueActor
        from torchrl.objectives import DiscreteCQLLoss, DQNLoss

        net = mlp(d, K, hidden)
        actor = QValueActor(net, in_keys=["observation"], spec=OneHot(K))
        if cql:
            loss = DiscreteCQLLoss(actor, action_space=OneHot(K), delay_value=True, loss_function="l2")
            loss.alpha = opts["cql_alpha"]
        else:
            loss = DQNLoss(actor, action_space=OneHot(K), delay_value=True, double_dqn=True, loss_function="l2")
        return loss, net, ("loss",) if not cql else ("loss_qvalue", "loss_cql")

    return build


def _iql(torch: Any, d: int, K: int, hidden: tuple[int, ...], opts: dict) -> tuple[Any, Any, Any]:
    from tensordict.nn import TensorDictModule
    from torchrl.data import OneHot
    from torchrl.modules import ProbabilisticActor
    from torchrl.modules.distributions import OneHotCategorical
    from torchrl.objectives import DiscreteIQLLoss

    logits = mlp(d, K, hidden)
    actor = ProbabilisticActor(TensorDictModule(logits, in_keys=["observation"], out_keys=["logits"]),
                               in_keys=["logits"], out_keys=["action"], spec=OneHot(K),
                               distribution_class=OneHotCategorical)  # fmt: skip
    qvalue = TensorDictModule(mlp(d, K, hidden), in_keys=["observation"], out_keys=["state_action_value"])
    value = TensorDictModule(mlp(d, 1, hidden), in_keys=["observation"], out_keys=["state_value"])
    loss = DiscreteIQLLoss(actor, qvalue, value, action_space=OneHot(K), expectile=opts["expectile"],
                           temperature=opts["temperature"], loss_function="l2")  # fmt: skip
    return loss, logits, ("loss_actor", "loss_qvalue", "loss_value")


#: name -> builder(torch, d, K, hidden, opts) -> (TorchRL loss module, the policy's scoring net, loss keys)
ALGORITHMS: dict[str, Callable[..., tuple[Any, Any, Any]]] = {
    "dqn": _q_learning(cql=False),
    "cql": _q_learning(cql=True),
    "iql": _iql,
}


def fit_sessions(
    log: Any,
    algorithm: str = "cql",
    *,
    gamma: float = 0.9,
    hidden_sizes: tuple[int, ...] = (64, 64),
    n_steps: int = 2000,
    batch_size: int = 256,
    learning_rate: float = 3e-4,
    target_update: float = 0.995,
    cql_alpha: float = 1.0,
    expectile: float = 0.7,
    temperature: float = 3.0,
    seed: int | None = 0,
    device: str | None = None,
) -> QPolicy:
    """Learn a session policy offline from logged sessions with a TorchRL loss.

    Args:
        log: logged sessions: a LoggedFeedback with ``trajectory_id`` (or a Parquet path of one).
        algorithm: ``"cql" | "iql" | "dqn"`` (:data:`ALGORITHMS`).
        gamma: the discount of the Bellman targets.
        hidden_sizes: the networks' ReLU layers.
        n_steps, batch_size, learning_rate: Adam steps on minibatches drawn uniformly from the steps.
        target_update: Polyak factor of the target networks (``SoftUpdate(eps=...)``).
        cql_alpha: the conservative penalty's weight (CQL).
        expectile, temperature: IQL's value expectile and advantage temperature (the actor's
            weights are exp(temperature * advantage)).
        seed: initialization and minibatches.
        device: torch device (``None``: cuda when available, else cpu).
    """
    import torch
    from tensordict import TensorDict
    from torchrl.objectives import SoftUpdate

    fb = as_feedback(log)
    owner = "fit_sessions"
    if algorithm not in ALGORITHMS:
        raise ValueError(f"{owner}: algorithm must be one of {', '.join(ALGORITHMS)}; got {algorithm!r}")
    gamma = check_float(owner, "gamma", gamma, low=0.0, high=1.0, low_open=True)
    n_steps = check_int(owner, "n_steps", n_steps, 1)
    batch_size = check_int(owner, "batch_size", batch_size, 1)
    learning_rate = check_float(owner, "learning_rate", learning_rate, low=0.0, low_open=True)
    opts = {"cql_alpha": check_float(owner, "cql_alpha", cql_alpha, low=0.0),
            "expectile": check_float(owner, "expectile", expectile, low=0.0, high=1.0, low_open=True),
            "temperature": check_float(owner, "temperature", temperature, low=0.0, low_open=True)}  # fmt: skip
    seed = check_seed(owner, seed)
    data = transitions(fb)
    dev = torch.device(device or ("cuda" if torch.cuda.is_available() else "cpu"))
    K, d, n = fb.n_actions, fb.dim_context, fb.n_rounds
    with torch_threads(1 if dev.type == "cpu" else None), torch.random.fork_rng(devices=[]):
        torch.manual_seed(0 if seed is None else int(seed))
        loss, net, keys = ALGORITHMS[algorithm](torch, d, K, tuple(hidden_sizes), opts)
        loss = loss.to(dev)
        loss.make_value_estimator(gamma=gamma)
        updater = SoftUpdate(loss, eps=target_update)
        opt = torch.optim.Adam(loss.parameters(), lr=learning_rate)
        f32 = lambda a: torch.tensor(a, dtype=torch.float32, device=dev)  # noqa: E731  (a copy: logs may be read-only)
        obs, nxt = f32(data["observation"]), f32(data["next_observation"])
        onehot = torch.nn.functional.one_hot(torch.tensor(data["action"], device=dev), K).long()
        reward, done = f32(data["reward"])[:, None], torch.tensor(data["done"], device=dev)[:, None]
        gen = torch.Generator().manual_seed(0 if seed is None else int(seed))
        for _ in range(n_steps):
            idx = torch.randint(n, (batch_size,), generator=gen).to(dev)
            batch = TensorDict({"observation": obs[idx], "action": onehot[idx],
                                ("next", "observation"): nxt[idx], ("next", "reward"): reward[idx],
                                ("next", "done"): done[idx], ("next", "terminated"): done[idx]},
                               batch_size=[batch_size], device=dev)  # fmt: skip
            out = loss(batch)
            total = sum(out[k] for k in keys)
            opt.zero_grad()
            total.backward()
            opt.step()
            if updater is not None:
                updater.step()
    net.eval()
    return QPolicy(K, d, seed, net=net, hidden_sizes=tuple(hidden_sizes), device=dev)
