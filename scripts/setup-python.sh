#!/usr/bin/env bash
# A Python virtual environment at ./.venv (git-ignored) with PyTorch, PyTorch Lightning,
# Hugging Face Transformers (with accelerate, which its Trainer needs), TensorBoard and pytest,
# for the tests that train real models and stream them into `sonograd listen` (clients/python)
# and that write real TensorBoard event files (tests/tensorboard.rs).
# About 2.7 GB of wheels from PyPI (torch 2.13.0 with its CUDA libraries: PyPI's Linux build).
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
venv="$root/.venv"
if [ -x "$venv/bin/python3" ] && "$venv/bin/python3" -c "import torch, lightning.pytorch, transformers, accelerate, pytest, tensorboard" >/dev/null 2>&1; then
  exit 0
fi
if ! [ -x "$venv/bin/python3" ]; then
  echo "setup-python: creating $venv with torch==2.13.0, lightning==2.6.6, transformers==5.24.0 (about 2.7 GB from PyPI)"
  python3 -m venv "$venv"
  "$venv/bin/python3" -m pip install --quiet --upgrade pip
fi
"$venv/bin/python3" -m pip install --quiet torch==2.13.0 lightning==2.6.6 transformers==5.24.0 \
  accelerate==1.15.0 pytest==9.2.0 tensorboard==2.21.0
"$venv/bin/python3" -c "import torch, lightning, transformers; print('setup-python: torch', torch.__version__, 'lightning', lightning.__version__, 'transformers', transformers.__version__)"
