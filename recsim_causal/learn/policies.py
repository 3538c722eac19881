"""The policies that off-policy learning returns: each one a :class:`~recsim_causal.agents.Policy`.

- :class:`NetworkPolicy`: a softmax over the scores of a torch network of the context, linear
  (``hidden_sizes=()``, the linear softmax policy of POEM / BanditNet) or an MLP; ``greedy=True``
  deploys its argmax instead (OBP's ``NNPolicyLearner.predict``).
- :class:`RewardModelPolicy`: greedy (or softmax with a temperature) on a fitted reward model
  qhat(x, a), OBP's ``QLearner``.

Both are frozen once learned: :meth:`update` changes nothing (a policy learned from a log is
deployed as it is; learn again from a new log with :func:`recsim_causal.learn.fit`). Both
report their whole distribution, so they can log, be OPE targets and be compared like any agent.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from recsim_causal.agents.base import ScorePolicy, check_float, greedy_act, greedy_probs

__all__ = ["NetworkPolicy", "RewardModelPolicy", "mlp", "softmax_probs"]


def mlp(n_in: int, n_out: int, hidden_sizes: tuple[int, ...]) -> Any:
    """A torch MLP ``R^n_in -> R^n_out`` with ReLU hidden layers (``()``: one linear layer)."""
    import torch

    layers: list[torch.nn.Module] = []
    prev = n_in
    for h in hidden_sizes:
        layers += [torch.nn.Linear(prev, h), torch.nn.ReLU()]
        prev = h
    layers.append(torch.nn.Linear(prev, n_out))
    return torch.nn.Sequential(*layers)


def softmax_probs(scores: np.ndarray, temperature: float) -> np.ndarray:
    """``softmax(scores / temperature)`` row-wise (``-inf`` entries get probability 0)."""
    z = scores / temperature
    z = z - z.max(axis=1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=1, keepdims=True)


class _FrozenScorePolicy(ScorePolicy):
    """A score policy deployed as learned: softmax with ``temperature`` or greedy."""

    def __init__(self, n_actions: int, dim: int | None, seed: int | None, temperature: float, greedy: bool) -> None:
        super().__init__(n_actions, dim, seed)
        self.temperature = check_float(self.name, "temperature", temperature, low=0.0, low_open=True)
        self.greedy = bool(greedy)
        self._params.update(temperature=self.temperature, greedy=self.greedy)

    def probs_from_scores(self, scores: np.ndarray) -> np.ndarray:
        return greedy_probs(scores) if self.greedy else softmax_probs(scores, self.temperature)

    @property
    def slate_rule(self) -> str:
        return "greedy" if self.greedy else "plackett_luce"

    def act(self, contexts: np.ndarray, rng: np.random.Generator | None = None) -> tuple[np.ndarray, np.ndarray]:
        if self.greedy:
            return greedy_act(self.scores(contexts), self.rng if rng is None else rng)
        return super().act(contexts, rng)

    def update(self, contexts: np.ndarray, actions: np.ndarray, rewards: np.ndarray) -> None:
        """Checks the feedback and changes nothing: a policy learned from a log is frozen."""
        self._feedback(contexts, actions, rewards)


class NetworkPolicy(_FrozenScorePolicy):
    """``pi(a | x) = softmax(f(x) / temperature)_a`` with ``f`` a torch network ``R^d -> R^K``.

    ``hidden_sizes=()`` is the linear softmax policy ``f(x) = W' z(x) + b``, ``z`` the context
    standardized with the training log's mean and standard deviation; otherwise an MLP with
    ReLU hidden layers. With ``action_context`` (K, m), the item features, the network maps
    ``z`` to ``R^m`` and the score of item a is ``g(z) . action_context[a] + b_a``: the linear
    policy over the joint features ``z (x) action_context[a]`` of POEM, whose parameters are
    shared by all items (an item seldom logged borrows from similar ones). The network runs on
    ``device`` (``None``: ``cuda`` when available).
    """

    def __init__(self, n_actions: int, dim: int, seed: int | None = 0, *, hidden_sizes: tuple[int, ...] = (),
                 action_context: np.ndarray | None = None, temperature: float = 1.0, greedy: bool = False,
                 device: str | None = None) -> None:  # fmt: skip
        import torch

        super().__init__(n_actions, dim, seed, temperature, greedy)
        self.hidden_sizes = tuple(int(h) for h in hidden_sizes)
        if any(h < 1 for h in self.hidden_sizes):
            raise ValueError(f"{self.name}: hidden_sizes must be positive integers, got {list(hidden_sizes)}")
        self.device = torch.device(device or ("cuda" if torch.cuda.is_available() else "cpu"))
        self._params.update(hidden_sizes=list(self.hidden_sizes))
        ac = None
        if action_context is not None:
            ac = np.asarray(action_context, dtype=np.float64)
            if ac.ndim != 2 or ac.shape[0] != n_actions:
                raise ValueError(f"{self.name}: action_context must have shape ({n_actions}, m), got {ac.shape}")
            self._params.update(action_context=ac.tolist())  # as given: load standardizes it the same way
            ac = (ac - ac.mean(axis=0)) / (ac.std(axis=0) + 1e-8)
        with torch.random.fork_rng(devices=[]):  # leave the global torch RNG untouched
            torch.manual_seed(0 if seed is None else int(seed))
            self.net = mlp(self.dim, n_actions if ac is None else ac.shape[1], self.hidden_sizes).to(self.device)
            self.item_bias = torch.nn.Parameter(torch.zeros(n_actions, device=self.device))
        self.ac = None if ac is None else torch.as_tensor(ac, dtype=torch.float32, device=self.device)
        self.mu = np.zeros(self.dim)
        self.sd = np.ones(self.dim)

    def standardize_with(self, contexts: np.ndarray) -> None:
        """Fix the context standardization to ``contexts``' mean and standard deviation."""
        x = self._contexts(contexts)
        self.mu, self.sd = x.mean(axis=0), x.std(axis=0) + 1e-8

    def tensor(self, contexts: np.ndarray) -> Any:
        """Standardized contexts as a float32 tensor on the policy's device."""
        import torch

        z = (self._contexts(contexts) - self.mu) / self.sd
        return torch.as_tensor(z, dtype=torch.float32, device=self.device)

    def parameters(self) -> list:
        """The trainable tensors."""
        return [*self.net.parameters(), self.item_bias]

    def raw_scores(self, z: Any) -> Any:
        """f(z) ``(B, K)`` of standardized contexts (a tensor, with gradients)."""
        out = self.net(z)
        return out + self.item_bias if self.ac is None else out @ self.ac.T + self.item_bias

    def logits(self, z: Any) -> Any:
        """The deployed softmax's logits ``f(z) / temperature``."""
        return self.raw_scores(z) / self.temperature

    def scores(self, contexts: np.ndarray) -> np.ndarray:
        import torch

        with torch.no_grad():
            return self.raw_scores(self.tensor(contexts)).double().cpu().numpy()

    def state_dict(self) -> dict[str, np.ndarray]:
        state = {f"net.{k}": v.detach().cpu().numpy() for k, v in self.net.state_dict().items()}
        return {**state, "item_bias": self.item_bias.detach().cpu().numpy(), "mu": self.mu, "sd": self.sd}

    def load_state_dict(self, state: dict[str, np.ndarray]) -> None:
        import torch

        self.mu, self.sd = np.asarray(state["mu"]), np.asarray(state["sd"])
        net = {k[4:]: torch.as_tensor(v) for k, v in state.items() if k.startswith("net.")}
        self.net.load_state_dict(net)
        with torch.no_grad():
            self.item_bias.copy_(torch.as_tensor(state["item_bias"]))


class RewardModelPolicy(_FrozenScorePolicy):
    """Greedy (default) or softmax with ``temperature`` on a fitted reward model's qhat(x, a).

    ``model``: a fitted :class:`recsim_causal.ope.RegressionModel` (``len_list=1``, a built-in
    base model to be saved); its ``predict(x)[:, :, 0]`` are the scores. ``model_config``: the
    model's :meth:`~recsim_causal.ope.RegressionModel.config` instead, for an unfitted frame that
    :meth:`load` fills (``save``/``load`` keep the config and the fitted arrays).
    """

    def __init__(self, n_actions: int, dim: int, seed: int | None = 0, *, model: Any = None,
                 model_config: dict[str, Any] | None = None, temperature: float = 1.0,
                 greedy: bool = True) -> None:  # fmt: skip
        from recsim_causal.ope.reward_models import RegressionModel

        super().__init__(n_actions, dim, seed, temperature, greedy)
        if model is None and model_config is not None:
            model = RegressionModel(**{**model_config, "hidden_sizes": tuple(model_config.get("hidden_sizes", (64,)))})
            model.empty(self.dim)
        elif model is None or not getattr(model, "models_", None):
            raise ValueError(f"{self.name}: model must be a fitted RegressionModel, got {model!r}")
        self.model = model
        if isinstance(model.base_model, str):  # a scikit-learn base model is not saved (save raises)
            self._params.update(model_config=model.config())

    def scores(self, contexts: np.ndarray) -> np.ndarray:
        return self.model.predict(self._contexts(contexts))[:, :, 0]

    def state_dict(self) -> dict[str, np.ndarray]:
        return self.model.state_dict()

    def load_state_dict(self, state: dict[str, np.ndarray]) -> None:
        self.model.load_state_dict(state)

    def save(self, path: str) -> None:
        self.model.config()  # a scikit-learn base model: one line saying how to keep it instead
        super().save(path)
