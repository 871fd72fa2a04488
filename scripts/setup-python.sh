#!/usr/bin/env bash
# A Python virtual environment at ./.venv (git-ignored) with PyTorch, PyTorch Lightning and
# TensorBoard, for the tests that train real models and stream them into `sonograd listen`
# (clients/python) and that write real TensorBoard event files (tests/tensorboard.rs).
# About 2.6 GB of wheels from PyPI (torch 2.13.0 with its CUDA libraries: PyPI's Linux build).
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
venv="$root/.venv"
if [ -x "$venv/bin/python3" ] && "$venv/bin/python3" -c "import torch, lightning.pytorch, tensorboard" >/dev/null 2>&1; then
  exit 0
fi
if ! [ -x "$venv/bin/python3" ]; then
  echo "setup-python: creating $venv with torch==2.13.0 and lightning==2.6.6 (about 2.6 GB from PyPI)"
  python3 -m venv "$venv"
  "$venv/bin/python3" -m pip install --quiet --upgrade pip
fi
"$venv/bin/python3" -m pip install --quiet torch==2.13.0 lightning==2.6.6 tensorboard==2.21.0
"$venv/bin/python3" -c "import torch, lightning; print('setup-python: torch', torch.__version__, 'lightning', lightning.__version__)"
