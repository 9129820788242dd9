#!/usr/bin/env bash
# Offline policy-improvement rounds that fit 2 CPU cores (issue 34). Per round N, starting from policy P(N-1):
#   1. serve P(N-1); `recgpt train sample-round`: G answers + 1 greedy per prompt under the serving grammar, scored with
#      the dense reward (validation-target cuts of users no tuning sample holds; evidence as served);
#   2. stop the server (never two vLLM servers, nor a server beside training, on 2 cores); `recgpt train dpo` on the
#      round's best-versus-worst pairs (SHAPING: crs or sum), the sampling policy as reference; export (merge) -> P(N);
#   3. serve P(N); evaluate it alone (`eval --method expert`) on the validation tuning users, beside P(N-1) on the same users.
# Every step resumes (the round's samples.jsonl, DPO checkpoints, eval stores), so a killed run is rerun as is. What is
# small and needed on a fresh machine (each round's samples, summary and trainer files, the eval reports) is written
# under LEDGER and committed; weights stay in RUNS.
#   DATASET=office ROUNDS=2 scripts/offline_rounds.sh
set -euo pipefail
cd "$(dirname "$0")/.."
RECGPT=${RECGPT:-.venv/bin/recgpt}
DATASET=${DATASET:-office}
ROUNDS=${ROUNDS:-2}
PROMPTS=${PROMPTS:-500}           # prompts per round (issue 34: >= 500)
G=${G:-8}                         # answers per prompt (issue 34: >= 8)
SHAPING=${SHAPING:-crs}           # which pairs train: dpo-crs.jsonl or dpo-sum.jsonl (both are written every round)
DPO_STEPS=${DPO_STEPS:-24}        # x grad_accum 8 = 192 pairs a round: ~40 s a pair on 2 cores (two answers, policy and
                                  # reference), so about 2 h; raise it on a GPU (TRAIN_FLAGS=--no-cpu)
K=${K:-5}                         # tags per expert answer = K of cat HR@K
VAL_USERS=${VAL_USERS:-200}       # validation tuning users: which round's policy is kept is decided here, never on test
START=${START:-}                  # P(0): a served-weights folder (default: the prepared default policy)
TRAIN_FLAGS=${TRAIN_FLAGS:-}
RUNS=${RUNS:-${RECGPT_HOME:-$HOME/.cache/recgpt}/train/offline-$DATASET}
LEDGER=${LEDGER:-reports/training/offline/$DATASET}
mkdir -p "$RUNS" "$LEDGER"

if [ -z "$START" ]; then
  START=$(.venv/bin/python -c "from recgpt.settings import get_settings; from recgpt.tools.serving.model_prep import default_model_dir; from recgpt.tools.serving.policy import prepare_policy; s = get_settings(); print(prepare_policy(s.models_dir, 'qwen2.5-coder-0.5b', '$DATASET') or default_model_dir(s.models_dir))")
fi
serve() { $RECGPT serve --stop >/dev/null; $RECGPT serve --background --model "$1"; }
validate() {  # validate NAME: the served policy alone on the tuning users
  $RECGPT eval --dataset "$DATASET" --method expert --split validation --users "$VAL_USERS" --tags "$K" --concurrency 16 \
    --out "$LEDGER/$1-validation"
}

previous=$START
for round in $(seq 1 "$ROUNDS"); do
  echo "== round $round from $previous"
  policy="$RUNS/policy-$round"
  if [ ! -e "$policy/config.json" ]; then
    serve "$previous"
    [ "$round" = 1 ] && validate "policy-0"
    $RECGPT train sample-round --dataset "$DATASET" --out "$LEDGER/round-$round" --max-users "$PROMPTS" --samples "$G" \
      --tags-per-expert "$K" --seed "$((round + 1))"
    $RECGPT serve --stop >/dev/null
    $RECGPT train dpo --model "$previous" --rows-file "$LEDGER/round-$round/dpo-$SHAPING.jsonl" --out "$RUNS/dpo-$round" \
      --max-steps "$DPO_STEPS" $TRAIN_FLAGS
    $RECGPT train export "$RUNS/dpo-$round/final" --out "$policy"
  fi
  serve "$policy"
  validate "policy-$round"
  previous=$policy
done
$RECGPT serve --stop >/dev/null
echo "== done: $ROUNDS rounds; validation reports under $LEDGER/policy-*-validation"
