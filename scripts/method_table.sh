#!/usr/bin/env bash
# Held-out answer NLL (nats/token) on the first 200 GSM8K test problems for
# stories260K under SALR's methods, as Markdown tables. Two tables:
#
#   nll     no training: dense, pruned 50% (magnitude per matrix, 2:4, Wanda
#           per row), each without and with the rank-8 SVD residual adapter
#           (issue B)
#   trained STEPS steps of lora, prune-lora and salr at 50% with the same seed,
#           next to the untrained dense and pruned models (issue C)
#
#   SALR_ASSETS=../shared/assets bash scripts/method_table.sh [nll|trained|all] [OUT_DIR]
#
# STEPS (default 300) sets the training steps. Runs are salr-train run
# directories under OUT_DIR (default runs/method-table); finished runs are
# reused, so an interrupted table resumes.
set -euo pipefail
cd "$(dirname "$0")/.."
: "${SALR_ASSETS:?set SALR_ASSETS to the assets directory}"
which="${1:-all}"
out="${2:-runs/method-table}"
steps="${STEPS:-300}"
mkdir -p "$out"
go build -o "$out/bin/" ./cmd/salr-train

# Every run scores the same held-out set: GSM8K test, first 200 problems
# (eval_batches 25 x batch 8), answers scored up to 512 tokens.
common=(-set "data.eval_path=${SALR_ASSETS}/gsm8k/test.jsonl" -set train.eval_batches=25
        -set train.batch_size=8 -set data.seq_len=512 -set adapters.svd_rank=8 -set train.seed=42
        -set output.save_base=false -set output.save_peft=false -quiet)

# run NAME SETTINGS...: train (or reuse) a run and print its held-out NLL.
run() {
  local name=$1; shift
  local dir="$out/$name"
  if ! grep -q '"finished": true' "$dir/summary.json" 2>/dev/null; then
    "$out/bin/salr-train" -config quickstart.toml "${common[@]}" -set "output.dir=$dir" -overwrite "$@" >/dev/null
  fi
  printf '%.4f' "$(sed -n 's/.*"eval_loss": \([0-9.]*\).*/\1/p' "$dir/summary.json")"
}

if [ "$which" = nll ] || [ "$which" = all ]; then
  echo "| pattern | pruned 50% | + SVD adapter (rank 8) |"
  echo "|---|---|---|"
  dense=$(run dense -set method=lora -set train.max_steps=0)
  echo "| dense (no pruning) | $dense | - |"
  for spec in "magnitude per matrix|matrix|magnitude" "2:4 (magnitude)|2:4|magnitude" "Wanda per row|row|wanda"; do
    IFS='|' read -r label pattern score <<<"$spec"
    tag=$(echo "$pattern-$score" | tr ':' '-')
    a=$(run "prune-$tag" -set method=prune -set sparsity.pattern="$pattern" -set sparsity.score="$score")
    b=$(run "prune-svd-$tag" -set method=prune-svd -set sparsity.pattern="$pattern" -set sparsity.score="$score")
    echo "| $label | $a | $b |"
  done
  echo
fi

if [ "$which" = trained ] || [ "$which" = all ]; then
  echo "| method | held-out NLL after $steps steps | before training |"
  echo "|---|---|---|"
  echo "| dense, untrained | $(run dense -set method=lora -set train.max_steps=0) | |"
  echo "| pruned 50%, untrained | $(run prune-matrix-magnitude -set method=prune) | |"
  for m in lora prune-lora salr; do
    nll=$(run "$m-$steps" -set method=$m -set train.max_steps="$steps")
    before=$(printf '%.4f' "$(sed -n 's/.*"initial_eval_loss": \([0-9.]*\).*/\1/p' "$out/$m-$steps/summary.json")")
    echo "| $m | $nll | $before |"
  done
fi
