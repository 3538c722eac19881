"""LinUCB that reads item texts: a new item is scored from its BERT embedding on arrival.

Each arm keeps LinUCB's ridge model (Li et al. 2010), but its prior mean is not 0: it is
``theta0_a = W e_a``, a shared map of the item's text embedding ``e_a``, learned from every
item's feedback by one ridge regression of the reward on ``x (x) e_a`` (a bilinear model of
context and text). Arm a's estimate is the ridge solution shrunk toward that prior,

    theta_a = argmin sum_i (r_i - x_i . theta)^2 + lambda ||theta - theta0_a||^2
            = A_a^-1 (b_a + lambda theta0_a),

so an arm with no data of its own (a new item) starts at what items with similar texts earned
for similar users, and its own data take over as they come. Scores are
``x . theta_a + alpha ||x||_{A_a^-1}`` (LinUCB's width).

Embeddings: ``encoder="default"`` is all-MiniLM-L6-v2 from local weights
(:func:`recsim_causal.embeddings.encode_texts`, no network); they are reduced to
``n_components`` principal components of the first catalogue's embeddings (standardized) plus
a constant, so the bilinear model has ``dim * (n_components + 1)`` weights.
"""

from __future__ import annotations

from typing import Any, Callable, Sequence

import numpy as np

from recsim_causal.agents.base import check_float, check_int
from recsim_causal.agents.linear import LinUCB


class LinUCBText(LinUCB):
    """LinUCB whose arms start from a text prior (see the module docstring).

    Args:
        item_texts: the K item texts of the catalogue (the runner passes the world's).
        encoder: "default" (local all-MiniLM-L6-v2), a local model directory, or a callable
            texts -> (n, D) embeddings.
        n_components: principal components of the embeddings kept.
        lambda_w: ridge regularization of the shared text model.
        refit_every: rows between refits of the shared model (it is a d(p+1)-dim solve).
    """

    def __init__(self, n_actions: int, dim: int, item_texts: Sequence[str] | None = None, alpha: float = 1.0,
                 lambda_: float = 1.0, n_components: int = 8, lambda_w: float = 1.0, refit_every: int = 256,
                 encoder: str | Callable[[list[str]], np.ndarray] = "default", seed: int | None = 0) -> None:
        super().__init__(n_actions, dim, alpha=alpha, lambda_=lambda_, seed=seed)
        if item_texts is None or len(item_texts) != self.n_actions:
            got = None if item_texts is None else len(item_texts)
            raise ValueError(f"{self.name}: item_texts must hold one text per action ({self.n_actions}), got {got}")
        self.n_components = check_int(self.name, "n_components", n_components, 1)
        self.lambda_w = check_float(self.name, "lambda_w", lambda_w, low=0.0, low_open=True)
        self.refit_every = check_int(self.name, "refit_every", refit_every, 1)
        self.encoder = encoder
        emb = self._encode(list(item_texts))
        self._mean = emb.mean(axis=0)
        _, sv, vt = np.linalg.svd(emb - self._mean, full_matrices=False)
        p = min(self.n_components, int((sv > 1e-9 * max(sv[0], 1e-300)).sum()))  # components with variance
        self._components = vt[:p]
        self._scale = np.maximum(sv[:p] / np.sqrt(max(len(emb) - 1, 1)), 1e-8)
        self.item_features = self._project(emb)                        # (K, p + 1)
        width = self.dim * self.item_features.shape[1]
        self._G = self.lambda_w * np.eye(width)
        self._h = np.zeros(width)
        self.W = np.zeros((self.dim, self.item_features.shape[1]))     # the shared text model
        self._since_fit = 0
        self._theta = np.zeros((self.n_actions, self.dim))              # arm estimates with the prior
        self._params.update(n_components=self.n_components, lambda_w=self.lambda_w, refit_every=self.refit_every,
                            encoder=encoder if isinstance(encoder, str) else getattr(encoder, "__name__", "callable"))

    #: LinUCB's score slopes are of its plain ridge, not of the text prior: not claimed here.
    scores_with_slope = None

    def _encode(self, texts: list[str]) -> np.ndarray:
        if callable(self.encoder):
            return np.asarray(self.encoder(texts), dtype=np.float64)
        from recsim_causal.embeddings import encode_texts

        return encode_texts(texts, model=self.encoder, device="cpu").astype(np.float64)

    def _project(self, emb: np.ndarray) -> np.ndarray:
        z = (emb - self._mean) @ self._components.T / self._scale
        return np.concatenate([z, np.ones((len(z), 1))], axis=1)

    def prior(self) -> np.ndarray:
        """theta0_a = W e_a for every arm, (K, d)."""
        return self.item_features @ self.W.T

    def _refresh(self) -> None:
        ridge = self.ridge
        self._theta = ridge.theta + self.lambda_ * np.einsum("kij,kj->ki", ridge.A_inv, self.prior())

    def _ucb(self, contexts: np.ndarray, reuse: bool) -> np.ndarray:
        x = self._contexts(contexts)
        score = x @ self._theta.T
        if self.alpha:
            score += np.sqrt(self.ridge.quad_form(x, self.alpha * self.alpha))
        return score

    def update(self, contexts: np.ndarray, actions: np.ndarray, rewards: np.ndarray) -> None:
        x, a, r = self._feedback(contexts, actions, rewards)
        self.ridge.update(x, a, r)
        phi = (x[:, :, None] * self.item_features[a][:, None, :]).reshape(len(a), -1)  # x (x) e_a
        self._G += phi.T @ phi
        self._h += phi.T @ r
        self._since_fit += len(a)
        if self._since_fit >= self.refit_every:
            self.W = np.linalg.solve(self._G, self._h).reshape(self.W.shape)
            self._since_fit = 0
        self._refresh()

    def new_items(self, slots: Any, texts: Sequence[str] | None = None) -> None:
        """New items in ``slots``: their arms start afresh at the text prior of ``texts``."""
        slots = np.asarray(slots, dtype=np.int64)
        if texts is None or len(texts) != len(slots):
            raise ValueError(f"{self.name}.new_items: expected one text per new slot ({len(slots)}), got "
                             f"{None if texts is None else len(texts)}")
        self.item_features[slots] = self._project(self._encode(list(texts)))
        self.ridge.reset_arms(slots)
        self._refresh()

    def state_dict(self) -> dict[str, np.ndarray]:
        return {**self.ridge.state_dict(), "W": self.W, "G": self._G, "h": self._h, "item_features": self.item_features}
