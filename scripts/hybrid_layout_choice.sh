#!/usr/bin/env bash
# Issue 35: choose the hybrid layout on VALIDATION users (test is for the report). Each variant is one
# `recgpt eval --method expert --compression hybrid` over the same 200 validation users, beside text mode; the
# per-user results resume. Needs the server of scripts/hybrid_measure.sh (`recgpt serve --prompt-embeds`) running.
#   DATASET=movielens scripts/hybrid_layout_choice.sh
# Rows of the report (the hybrid ones vary Context fields, passed with --set):
#   expert                        text mode, the baseline every row is paired with
#   expert+hybrid                 compact: soft tokens side by side, older history as category counts (the adaptor's)
#   expert+hybrid+counts          + one line counting the whole history's categories (hybrid_category_counts)
#   expert+hybrid+counts+anchor3  + the newest 3 liked items as quoted titles, not soft tokens (hybrid_anchor_titles=3)
set -euo pipefail
cd "$(dirname "$0")/.."
RECGPT=${RECGPT:-.venv/bin/recgpt}
DATASET=${DATASET:-movielens}
USERS=${USERS:-200}
K=${K:-10}
OUT=reports/hybrid/$DATASET-validation  # one folder: its eval-<dataset>-validation.md pairs every row with text mode
run() { $RECGPT eval --dataset "$DATASET" --split validation --method expert --users "$USERS" --tags "$K" --concurrency 16 \
  --out "$OUT" "$@"; }
run
run --compression hybrid --name expert+hybrid
run --compression hybrid --set hybrid_category_counts=true --name expert+hybrid+counts
run --compression hybrid --set hybrid_category_counts=true --set hybrid_anchor_titles=3 --name expert+hybrid+counts+anchor3
