#!/usr/bin/env python
"""The BERT click model fully fine-tuned on the GPU: training rows/s, AUCs and the card's name.

    python scripts/gpu_ctr.py                     # on a CUDA machine (run by scripts/gpu_check.sh)
    python scripts/gpu_ctr.py --cpu-dry-run       # tiny sizes on the CPU: checks the script itself

Logs rounds in the default world (K = 100 items, LinUCB logger with epsilon-uniform
exploration), holds out later rounds (warm) and 20% of the items (cold start), fine-tunes
``recsim_causal.ctr.CTRModel(model="bert", finetune="full")`` (all-MiniLM-L6-v2, autocast in
bfloat16 on the GPU, or --precision fp16 with gradient scaling), and prints the fine-tuning
throughput (training rows per second) and the warm / cold ROC AUCs next to the ceiling (the
SCM's true click probability). The dry run uses a 2-layer random BERT and a few thousand rows.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
os.environ.setdefault("HF_HUB_OFFLINE", "1")

import numpy as np  # noqa: E402
import torch  # noqa: E402

from recsim_causal.ctr import CTRModel, cold_start_split, roc_auc  # noqa: E402
from recsim_causal.experiment.ctr import log_clicks  # noqa: E402
from recsim_causal.scm import World  # noqa: E402

TINY = dict(hidden_size=32, num_hidden_layers=2, num_attention_heads=2, intermediate_size=64,
            max_position_embeddings=64)
# all-MiniLM-L6-v2's architecture (its config.json): the stand-in when its weights are absent
MINILM = dict(vocab_size=30522, hidden_size=384, num_hidden_layers=6, num_attention_heads=12,
              intermediate_size=1536, max_position_embeddings=512)


def encoder_choice(dry: bool) -> tuple[object, str]:
    """The encoder setting and its description: MiniLM's weights when installed (or carried in
    $RECSIM_CAUSAL_MINILM), else its architecture with random weights (throughput only)."""
    if dry:
        return {"bert_config": TINY}, "2-layer random BERT (dry run)"
    from recsim_causal import embeddings

    try:
        return "default", f"all-MiniLM-L6-v2 ({embeddings.default_model_path()})"
    except ImportError:
        return {"bert_config": MINILM}, "MiniLM-L6 architecture, random weights (package not found: AUCs not meaningful)"


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--cpu-dry-run", action="store_true", help="tiny sizes on the CPU (checks the script)")
    p.add_argument("--n-rounds", type=int, default=None, help="logged rounds (default 100,000; dry run 2,000)")
    p.add_argument("--epochs", type=int, default=None, help="fine-tuning epochs (default 2; dry run 1)")
    p.add_argument("--batch-size", type=int, default=1024)
    p.add_argument("--precision", default="auto", choices=("auto", "bf16", "fp16", "fp32"))
    p.add_argument("--json", type=Path, default=None, help="also write the figures as JSON here")
    args = p.parse_args()
    dry = args.cpu_dry_run
    if not dry and not torch.cuda.is_available():
        sys.exit("gpu_ctr: no CUDA device (use --cpu-dry-run to check the script on a CPU)")
    device = "cpu" if dry else "cuda"
    card = "cpu (dry run)" if dry else torch.cuda.get_device_name(0)
    n_rounds = args.n_rounds or (2_000 if dry else 100_000)
    epochs = args.epochs or (1 if dry else 2)
    n_items = 20 if dry else 100
    print(f"device: {card}; torch {torch.__version__}; CTR full fine-tune, {n_rounds:,} logged rounds, K={n_items}",
          flush=True)

    world = World("default", n_items=n_items, seed=0)
    feedback = log_clicks(world, {"logger": {"agent": "linucb", "epsilon": 0.3}, "train_rounds": 500 if dry else 5_000,
                                  "n_rounds": n_rounds}, seed=0)
    x, a, y = feedback.context, feedback.action, feedback.reward
    true_p = feedback.expected_reward[np.arange(len(a)), a]
    split = cold_start_split(a, n_items, test_fraction=0.2, cold_fraction=0.2, rng=np.random.default_rng([0, 5]))
    tr = split["train"]
    encoder, described = encoder_choice(dry)
    print(f"  encoder: {described}", flush=True)
    settings = dict(model="bert", finetune="full", probe_epochs=2, n_epochs=epochs, batch_size=args.batch_size,
                    device=device, precision=args.precision, progress=True, encoder=encoder)
    model = CTRModel(settings, n_items, x.shape[1], item_texts=world.catalog.texts).fit(x[tr], a[tr], y[tr])
    auc = {s: roc_auc(y[split[s]], model.predict(x[split[s]], a[split[s]])) for s in ("warm", "cold")}
    ceiling = {s: roc_auc(y[split[s]], true_p[split[s]]) for s in ("warm", "cold")}
    result = {"device": card, "encoder": described, "finetune": "full", "precision": args.precision, "rows": int(len(tr)),
              "epochs": epochs, "rows_per_s": model.finetune_rows_per_s, "fit_seconds": model.fit_seconds,
              "auc": auc, "ceiling_auc": ceiling}
    print(f"  fine-tuning throughput (full, {args.precision})   {model.finetune_rows_per_s:>12,.0f} rows/s")
    for s in ("warm", "cold"):
        print(f"  AUC {s:<5} bert {auc[s]:.4f}   true probability (ceiling) {ceiling[s]:.4f}")
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
