#!/usr/bin/env bash
# Issue 7's measurement: hybrid (one soft token per item) vs full-text context on the default model.
#   adaptor (trained once, LLM frozen) -> server with prompt embeddings -> expert eval in text and hybrid mode on
#   the same Office test users -> reports/hybrid-office.md/.json/.png (tokens, prefill time, self-perception, fidelity).
# Every step resumes: the adaptor is trained once, eval results are stored per user.
set -euo pipefail
cd "$(dirname "$0")/.."
RECGPT=${RECGPT:-.venv/bin/recgpt}
TEXT_USERS=${TEXT_USERS:-200}     # text-mode users (the training chain's base eval uses the same 200: reused when present)
HYBRID_USERS=${HYBRID_USERS:-100} # hybrid-mode users (the first HYBRID_USERS of the same seeded sample)
K=${K:-5}
MODEL=${MODEL:-smollm2-135m}      # the committed reports/hybrid-office.* was measured on smollm2-135m
FOLDER=$(${PYTHON:-.venv/bin/python} -c "from recgpt.tools.serving.model_prep import registry_entry; print(registry_entry('$MODEL').folder)")
ADAPTOR=${ADAPTOR:-${RECGPT_HOME:-$HOME/.cache/recgpt}/adaptors/$FOLDER}
# CPU-sized (about 16 min on 2 cores): 400 training entities x 3 questions, 1 epoch, 10 distilled prompts, 100 held-out entities
[ -f "$ADAPTOR/adaptor.json" ] || $RECGPT train adaptor --model "$MODEL" --distill-users 10 --perception-entities 400 --heldout-entities 100 --epochs 1
$RECGPT serve --stop >/dev/null
$RECGPT serve --model "$MODEL" --prompt-embeds --background
$RECGPT eval --method expert --users "$TEXT_USERS" --tags "$K" --concurrency 16 --out reports/hybrid/text
$RECGPT eval --method expert --users "$HYBRID_USERS" --tags "$K" --concurrency 16 --compression hybrid --out reports/hybrid/hybrid
$RECGPT stats hybrid --users 200 --prefill-users 20 \
  --text-eval reports/hybrid/text/eval-office-test-expert.json --hybrid-eval reports/hybrid/hybrid/eval-office-test-expert.json
$RECGPT serve --stop
