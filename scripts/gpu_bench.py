#!/usr/bin/env python
"""GPU figures for the two torch workloads, as a table with the card's name.

    python scripts/gpu_bench.py                   # on a CUDA machine (run by scripts/gpu_check.sh)
    python scripts/gpu_bench.py --cpu-dry-run     # tiny sizes on the CPU: checks the script itself

1. Item encoding: all-MiniLM-L6-v2 over 100,000 item texts of 32 tokens, bfloat16
   (``recsim_causal.embeddings.encode_texts``: tokenization included), target >= 100,000 items/s.
2. PPO end to end: ``recsim_causal.agents.ppo_bert.PPOBert`` on RecSimCausal/Bandit-v0 with 4,096 envs,
   policy on the GPU (rollouts, SB3 adapter, PPO updates: everything ``learn`` does), with the
   world on numpy (host) and on torch (the same GPU), target >= 50,000 env-steps/s. The learned
   policy's exact value is printed next to random's and the oracle's, so a fast run that
   learns nothing shows.
3. The World on the GPU (``backend="torch", device="cuda"``): vector Bandit-v0 at N = 1M users,
   K = 100, oracle "full" (target >= 100M user-steps/s), and a K sweep (100 ... 1M items,
   oracles "chosen" and "best") next to the numpy world on the host.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
import warnings
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "scripts"))
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "true")

import gymnasium as gym  # noqa: E402
import numpy as np  # noqa: E402
import torch  # noqa: E402

import recsim_causal.envs  # noqa: E402
from recsim_causal.agents.ppo_bert import PPOBert  # noqa: E402
from recsim_causal import embeddings  # noqa: E402

ROWS: list[dict] = []

# all-MiniLM-L6-v2's architecture (its config.json): the stand-in when its weights are absent.
MINILM = dict(vocab_size=30522, hidden_size=384, num_hidden_layers=6, num_attention_heads=12,
              intermediate_size=1536, max_position_embeddings=512)


def row(name: str, value: float, unit: str, target: float | None = None, note: str = "") -> None:
    ratio = value / target if target else None
    ROWS.append(dict(name=name, value=value, unit=unit, target=target, ratio=ratio, note=note))
    tgt = f">= {target:,.0f}  ({ratio:.2f}x)" if target else ""
    print(f"  {name:<44} {value:>14,.3f} {unit:<12} {tgt} {note}", flush=True)


def item_texts(n: int, rng: np.random.Generator) -> list[str]:
    """Catalog-like descriptions long enough to fill 32 tokens (truncated at 32)."""
    from recsim_causal.catalog import PRICE_TIERS, TOPICS

    topics = rng.integers(len(TOPICS), size=n)
    styles = rng.integers(3, size=n)
    brands = rng.integers(1, 200, size=n)
    tiers = rng.integers(len(PRICE_TIERS), size=n)
    ratings = rng.uniform(1, 5, size=n)
    return [
        f"{TOPICS[t][1][s]} {TOPICS[t][0]} by Brand {b}, {PRICE_TIERS[p]} price, rated {r:.1f} by "
        f"customers who bought it for everyday use, gifts and travel; item number {i} in the catalog"
        for i, (t, s, b, p, r) in enumerate(zip(topics, styles, brands, tiers, ratings))
    ]


def encoder_choice():
    try:
        path = embeddings.default_model_path()
        return "default", f"all-MiniLM-L6-v2 ({path})"
    except ImportError:
        from transformers import BertConfig

        return BertConfig(**MINILM), "MiniLM-L6 architecture, random weights (package not found)"


def bench_encoding(args, device: str) -> None:
    print(f"\n[item encoding] {args.items:,} items x {args.tokens} tokens on {device}", flush=True)
    model, label = encoder_choice()
    print(f"  encoder: {label}")
    texts = item_texts(args.items, np.random.default_rng(0))
    kw = dict(max_length=args.tokens, device=device, use_cache=False, batch_size=args.encode_batch)
    encoder, tokenizer = embeddings.load_encoder(model)  # loading is not what we time
    lengths = [len(x) for x in tokenizer(texts[:1000], truncation=True, max_length=args.tokens)["input_ids"]]
    print(f"  tokens per text: mean {np.mean(lengths):.1f} (max_length {args.tokens})")
    embeddings.encode_texts(texts[: min(len(texts), 4 * args.encode_batch)], (encoder, tokenizer), **kw)  # warm-up
    if device.startswith("cuda"):
        torch.cuda.synchronize()
    t0 = time.perf_counter()
    tok = tokenizer(texts, truncation=True, max_length=args.tokens, padding="longest", return_tensors="np")
    t_tok = time.perf_counter() - t0
    t0 = time.perf_counter()
    emb = embeddings.encode_texts(texts, (encoder, tokenizer), **kw)
    if device.startswith("cuda"):
        torch.cuda.synchronize()
    dt = time.perf_counter() - t0
    assert emb.shape == (len(texts), encoder.config.hidden_size)
    assert np.allclose(np.linalg.norm(emb, axis=1), 1.0, atol=1e-3)
    dtype = "bf16" if device.startswith("cuda") else "fp32"
    row(f"encode items ({dtype}, tokenization included)", len(texts) / dt, "items/s", args.encode_target)
    row("  of which tokenization alone", len(texts) / t_tok, "items/s", note=f"{tok['input_ids'].shape}")


def policy_value(agent: PPOBert, n_items: int) -> tuple[float, float, float]:
    venv = gym.make_vec(recsim_causal.envs.BANDIT_ID, num_envs=20_000, vectorization_mode="vector_entry_point", n_items=n_items)
    x, _ = venv.reset(seed=12345)
    *_, info = venv.step(np.zeros(20_000, dtype=np.int64))
    q = info["expected_reward"]
    return float((agent.action_probs(x) * q).sum(1).mean()), float(q.mean()), float(q.max(1).mean())


def world_rate(backend: str, device: str, n: int, n_items: int, oracle: str, steps: int) -> float:
    """user-steps/s of the vector Bandit-v0 (``steps`` vector steps of ``n`` users, after a warm-up)."""
    from bench import vector_rate  # scripts/bench.py: the same measurement as the CPU table's

    return vector_rate(backend, n_items, oracle, 1, n=n, threads=None, device=device, steps=steps)


def bench_world(args, device: str) -> None:
    n = args.world_users
    print(f"\n[World] vector Bandit-v0, torch on {device}, N={n:,}", flush=True)
    row(f"torch world N={n:,} K=100 oracle=full", world_rate("torch", device, n, 100, "full", args.world_steps),
        "user-steps/s", args.world_target)
    host = world_rate("numpy", "cpu", 4096, 100, "full", 20)
    row("  numpy world on the host, N=4,096 K=100 full", host, "user-steps/s")
    for n_items in args.k_sweep:
        for oracle in ("chosen", "best"):
            users = n if oracle == "chosen" else max(1024, n // 16)
            steps = args.world_steps if oracle == "chosen" else max(2, args.world_steps // 10)
            rate = world_rate("torch", device, users, n_items, oracle, steps)
            row(f"  K={n_items:,} oracle={oracle} (N={users:,})", rate, "user-steps/s")


def bench_ppo(args, device: str, backend: str = "numpy") -> None:
    print(f"\n[PPO end to end] Bandit-v0, {args.envs:,} envs, {args.items_ppo} items, policy on {device}, "
          f"world on {backend}", flush=True)
    kw = {"backend": "torch", "device": device} if backend == "torch" else {}
    venv = gym.make_vec(recsim_causal.envs.BANDIT_ID, num_envs=args.envs, vectorization_mode="vector_entry_point",
                        n_items=args.items_ppo, **kw)
    texts = venv.unwrapped.world.catalog.texts
    model, label = encoder_choice()
    item_emb = embeddings.encode_texts(texts, model, device=device, use_cache=False)
    agent = PPOBert(args.items_ppo, venv.single_observation_space.shape[0], item_embeddings=item_emb,
                    n_steps=args.n_steps, batch_size=args.batch_size, n_epochs=args.n_epochs,
                    learning_rate=args.lr, device=device, seed=0, progress=False)
    rollout = args.envs * args.n_steps
    print(f"  rollout {rollout:,} transitions, minibatch {args.batch_size:,}, {args.n_epochs} epochs; items: {label}")
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*GPU.*")  # SB3: "PPO is meant for the CPU with an MLP"
        agent.learn(venv, total_timesteps=rollout)  # warm-up: CUDA context, allocator, first update
        if device.startswith("cuda"):
            torch.cuda.synchronize()
        start_steps = agent.num_timesteps
        t0 = time.perf_counter()
        agent.learn(venv, total_timesteps=args.ppo_steps)
        if device.startswith("cuda"):
            torch.cuda.synchronize()
        dt = time.perf_counter() - t0
    steps = agent.num_timesteps - start_steps
    row(f"PPO env-steps/s (rollouts + updates), {backend} world", steps / dt, "steps/s", args.ppo_target,
        note=f"{steps:,} steps in {dt:.1f} s")
    value, random_value, oracle = policy_value(agent, args.items_ppo)
    row("  learned policy value (exact)", value, "click rate", note=f"random {random_value:.3f}, oracle {oracle:.3f}")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--cpu-dry-run", action="store_true", help="tiny sizes on the CPU (checks the script)")
    p.add_argument("--only", default="world,encode,ppo", help="comma list of: world, encode, ppo")
    p.add_argument("--world-users", type=int, default=1_000_000)
    p.add_argument("--world-steps", type=int, default=50)
    p.add_argument("--world-target", type=float, default=100_000_000)
    p.add_argument("--k-sweep", type=lambda s: [int(x) for x in s.split(",")], default=[100, 10_000, 1_000_000])
    p.add_argument("--items", type=int, default=100_000)
    p.add_argument("--tokens", type=int, default=32)
    p.add_argument("--encode-batch", type=int, default=2048)
    p.add_argument("--encode-target", type=float, default=100_000)
    p.add_argument("--envs", type=int, default=4096)
    p.add_argument("--items-ppo", type=int, default=100)
    p.add_argument("--n-steps", type=int, default=16)
    p.add_argument("--batch-size", type=int, default=8192)
    p.add_argument("--n-epochs", type=int, default=4)
    p.add_argument("--lr", type=float, default=3e-3)
    p.add_argument("--ppo-steps", type=int, default=2_000_000)
    p.add_argument("--ppo-target", type=float, default=50_000)
    p.add_argument("--json", type=Path, default=None, help="also write the rows here")
    args = p.parse_args()
    if args.cpu_dry_run:
        args.items, args.encode_batch, args.envs, args.ppo_steps, args.batch_size = 512, 128, 256, 16_384, 1024
        args.world_users, args.world_steps, args.k_sweep = 4096, 5, [100, 10_000]
        device = "cpu"
    else:
        if not torch.cuda.is_available():
            sys.exit("gpu_bench: no CUDA device (use --cpu-dry-run to check the script on a CPU)")
        device = "cuda"
    card = torch.cuda.get_device_name(0) if device == "cuda" else f"CPU ({platform.processor() or platform.machine()})"
    print(f"device: {card}; torch {torch.__version__}; {os.cpu_count()} CPU cores; dry run: {args.cpu_dry_run}")
    only = set(args.only.split(","))
    if "world" in only:
        bench_world(args, device)
    if "encode" in only:
        bench_encoding(args, device)
    if "ppo" in only:
        bench_ppo(args, device)
        bench_ppo(args, device, backend="torch")

    print(f"\n=== recsim-causal GPU check: {card} ===")
    print(f"{'figure':<46} {'value':>14} {'unit':<12} {'target':>10} {'ratio':>7}")
    for r in ROWS:
        tgt = f"{r['target']:>10,.0f}" if r["target"] else f"{'':>10}"
        ratio = f"{r['ratio']:>6.2f}x" if r["ratio"] else f"{'':>7}"
        print(f"{r['name']:<46} {r['value']:>14,.3f} {r['unit']:<12} {tgt} {ratio}  {r['note']}")
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps({"device": card, "dry_run": args.cpu_dry_run, "rows": ROWS}, indent=2))


if __name__ == "__main__":
    main()
