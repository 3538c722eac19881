"""Item text embeddings: pooling, normalization, determinism, the disk cache, the real MiniLM offline."""

import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")  # before transformers reads it: nothing may be downloaded

import numpy as np
import pytest
import torch
from transformers import BertConfig

from recsim_causal import embeddings
from recsim_causal.embeddings import encode_texts, load_encoder

TEXTS = [
    "Lightweight running shoe by Brand 7, premium price, rated 4.6",
    "Waterproof rain jacket by Brand 2, budget price, rated 3.9",
    "Burr coffee grinder by Brand 11, mid-range price, rated 4.2",
    "Gripping mystery novel by Brand 5, budget price, rated 4.0",
    "Trail running shoe by Brand 3, mid-range price, rated 4.8",
    "Yoga mat",
    "Compact electric coffee grinder with a very long description that goes on and on past the token limit",
]


def tiny_config(**kw):
    """A 2-layer, 32-unit BERT with the MiniLM vocabulary: the real code path, random weights, no download."""
    args = dict(hidden_size=32, num_hidden_layers=2, num_attention_heads=2, intermediate_size=64,
                max_position_embeddings=64)
    return BertConfig(**{**args, **kw})


def test_shape_dtype_and_unit_norm(tmp_path):
    emb = encode_texts(TEXTS, tiny_config(), cache_dir=tmp_path)
    assert emb.shape == (len(TEXTS), 32) and emb.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(emb, axis=1), 1.0, atol=1e-6)
    assert len({row.tobytes() for row in emb}) == len(TEXTS)  # distinct texts, distinct vectors


def test_deterministic_and_seeded_without_touching_global_rng():
    state = torch.random.get_rng_state()
    a = encode_texts(TEXTS, tiny_config(), use_cache=False, seed=0)
    b = encode_texts(TEXTS, tiny_config(), use_cache=False, seed=0)
    c = encode_texts(TEXTS, tiny_config(), use_cache=False, seed=1)
    np.testing.assert_array_equal(a, b)
    assert np.abs(a - c).max() > 1e-2
    assert torch.equal(torch.random.get_rng_state(), state)


def test_mean_pooling_matches_a_direct_computation():
    """Length-sorted batches of any size give the masked mean of the unpadded forward pass."""
    model, tok = load_encoder(tiny_config(), seed=0)
    expected = []
    with torch.no_grad():
        for text in TEXTS:  # one text per forward pass: no padding at all
            ids = tok(text, truncation=True, max_length=16, return_tensors="pt")
            h = model(**ids).last_hidden_state[0].mean(0)
            expected.append((h / h.norm()).numpy())
    for batch_size in (1, 3, 100):
        got = encode_texts(TEXTS, (model, tok), use_cache=False, batch_size=batch_size, max_length=16)
        np.testing.assert_allclose(got, np.stack(expected), atol=2e-6)


def test_cls_pooling_differs_and_bad_pooling_is_named():
    mean = encode_texts(TEXTS, tiny_config(), use_cache=False)
    cls = encode_texts(TEXTS, tiny_config(), use_cache=False, pooling="cls")
    assert np.abs(mean - cls).max() > 1e-2
    with pytest.raises(ValueError, match="pooling: unknown 'max'"):
        encode_texts(TEXTS, tiny_config(), pooling="max")


def test_cache_miss_then_hit_skips_the_model(tmp_path):
    before = embeddings.stats.model_loads
    first = encode_texts(TEXTS, tiny_config(), cache_dir=tmp_path)
    assert embeddings.stats.model_loads == before + 1
    files = list(tmp_path.glob("*.npy"))
    assert len(files) == 1 and not list(tmp_path.glob("*.tmp"))
    hits = embeddings.stats.cache_hits
    second = encode_texts(TEXTS, tiny_config(), cache_dir=tmp_path)
    assert embeddings.stats.model_loads == before + 1  # the hit never built the encoder
    assert embeddings.stats.cache_hits == hits + 1
    np.testing.assert_array_equal(first, second)
    # Every part of the key matters: texts, max_length, pooling, the encoder's weights (seed).
    encode_texts(TEXTS[:-1], tiny_config(), cache_dir=tmp_path)
    encode_texts(TEXTS, tiny_config(), cache_dir=tmp_path, max_length=8)
    encode_texts(TEXTS, tiny_config(), cache_dir=tmp_path, pooling="cls")
    encode_texts(TEXTS, tiny_config(), cache_dir=tmp_path, seed=3)
    assert len(list(tmp_path.glob("*.npy"))) == 5
    assert embeddings.stats.model_loads == before + 5


def test_cache_dir_from_environment(tmp_path, monkeypatch):
    monkeypatch.setenv("RECSIM_CAUSAL_CACHE", str(tmp_path))
    assert embeddings.default_cache_dir() == tmp_path / "embeddings"
    encode_texts(TEXTS[:2], tiny_config())
    assert len(list((tmp_path / "embeddings").glob("*.npy"))) == 1


def test_errors_name_the_problem(tmp_path):
    with pytest.raises(TypeError, match="one string"):
        encode_texts("a single text", tiny_config())
    with pytest.raises(ValueError, match="vocab_size=100"):
        encode_texts(TEXTS, tiny_config(vocab_size=100), use_cache=False)
    with pytest.raises(FileNotFoundError, match="not in the local Hugging Face cache"):
        encode_texts(TEXTS, "no-such-org/no-such-model", cache_dir=tmp_path)


def test_minilm_default_offline_agrees_with_sentence_transformers(tmp_path):
    """The packaged all-MiniLM-L6-v2 loads without network and gives (K, 384) embeddings equal to
    the reference implementation's (sentence-transformers: the same model, mean pooling, normalize)."""
    emb = encode_texts(TEXTS, "default", cache_dir=tmp_path, device="cpu")
    assert emb.shape == (len(TEXTS), 384)
    sim = emb @ emb.T
    assert sim[0, 4] > sim[0, 2] + 0.2  # two running shoes are closer than a shoe and a grinder
    st = pytest.importorskip("sentence_transformers")
    ref = st.SentenceTransformer(str(embeddings.default_model_path()), device="cpu")
    ref.max_seq_length = 32
    np.testing.assert_allclose(emb, ref.encode(TEXTS, normalize_embeddings=True), atol=1e-5)


@pytest.mark.gpu
def test_cuda_bf16_matches_cpu_float32(tmp_path):
    if not torch.cuda.is_available():
        pytest.skip("needs CUDA")
    cpu = encode_texts(TEXTS, "default", device="cpu", use_cache=False)
    gpu = encode_texts(TEXTS, "default", device="cuda", use_cache=False)
    assert gpu.dtype == np.float32 and gpu.shape == cpu.shape
    cosine = (cpu * gpu).sum(axis=1)
    assert cosine.min() > 0.99, cosine  # bfloat16 keeps ~3 significant digits
