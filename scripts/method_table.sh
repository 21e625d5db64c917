#!/usr/bin/env bash
# Held-out answer NLL (nats/token) on the first 200 GSM8K test problems for
# stories260K under SALR's methods, as Markdown tables. Two tables:
#
#   nll     no training: dense, pruned 50% (magnitude per matrix, 2:4, Wanda
#           per row), each without and with the rank-8 SVD residual adapter
#           (issue B)
#   trained the sweep sweeps/methods.toml: lora and prune-lora at ranks 8 and
#           16, salr (LoRA 8 + SVD 8) with the SVD adapter trained and frozen,
#           so that every method meets another at its trainable-parameter
#           count, each under seeds 42, 7 and 1; the table is the mean ±
#           sample standard deviation over the seeds (issue O)
#
#   SALR_ASSETS=../shared/assets bash scripts/method_table.sh [nll|trained|all] [OUT_DIR]
#
# nll runs are salr-train run directories under OUT_DIR (default
# runs/method-table); the trained sweep runs in runs/sweeps/methods (its
# results.md also lists every run). Finished runs are reused, so an
# interrupted table resumes. STEPS overrides the training steps (default:
# the sweep's 300), PARALLEL the runs trained at once (default 2).
set -euo pipefail
cd "$(dirname "$0")/.."
: "${SALR_ASSETS:?set SALR_ASSETS to the assets directory}"
which="${1:-all}"
out="${2:-runs/method-table}"
mkdir -p "$out"
go build -o "$out/bin/" ./cmd/salr-train ./cmd/salr-sweep

# Every run scores the same held-out set as sweeps/methods.toml: GSM8K test,
# first 200 problems (eval_batches 25 x batch 8), answers scored up to 512
# tokens.
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
  sets=()
  if [ -n "${STEPS:-}" ]; then sets=(-set "train.max_steps=$STEPS"); fi
  # Progress goes to stderr; salr-sweep writes results.md when all runs end.
  "$out/bin/salr-sweep" -config sweeps/methods.toml -parallel "${PARALLEL:-2}" "${sets[@]}" >&2
  sed -n '/^Mean ± /,/^Best mean: /p' runs/sweeps/methods/results.md
fi
