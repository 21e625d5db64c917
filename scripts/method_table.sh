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
#   theorem2 the three ways of combining magnitude pruning with LoRA of the
#           SALR paper's Theorem 2 (salr: prune the frozen base before
#           training; lora-prune-dynamic: prune during training; lora-prune:
#           prune after training), plus prune-lora, at 30%, 50% and 70%:
#           quickstart runs of the same steps, seed and data, compared with
#           the dense fine-tuned weights of a lora run by salr-bench theorem2,
#           then the weight-space check at the llama-2048x16 shape (issue L).
#           Not part of all.
#
#   SALR_ASSETS=../shared/assets bash scripts/method_table.sh [nll|trained|theorem2|all] [OUT_DIR]
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

if [ "$which" = theorem2 ]; then
  # Runs under OUT_DIR/theorem2, dense fp32 bases so that the stored weights
  # are the trained ones exactly; STEPS (default 300) and EVERY (the mask
  # interval of lora-prune-dynamic, default 10) apply to every run.
  go build -o "$out/bin/" ./cmd/salr-bench
  t2=(-set "train.max_steps=${STEPS:-300}" -set output.base_format=dense-fp32 -set output.save_peft=false
      -set train.checkpoint_every=0 -set "sparsity.every=${EVERY:-10}" -quiet)
  train2() { # NAME SETTINGS...: train (or reuse) a run of the theorem2 table
    local dir="$out/theorem2/$1"; shift
    if ! grep -q '"finished": true' "$dir/summary.json" 2>/dev/null; then
      "$out/bin/salr-train" -config quickstart.toml "${t2[@]}" -set "output.dir=$dir" -overwrite "$@" >/dev/null
    fi
  }
  train2 lora -set method=lora
  args=(-dense "$out/theorem2/lora")
  for ratio in 0.5 0.3 0.7; do
    for method in salr prune-lora lora-prune-dynamic lora-prune; do
      train2 "$method-$ratio" -set method=$method -set sparsity.ratio=$ratio
    done
    args+=(-runs "$out/theorem2/salr-$ratio,$out/theorem2/prune-lora-$ratio,$out/theorem2/lora-prune-dynamic-$ratio,$out/theorem2/lora-prune-$ratio")
  done
  "$out/bin/salr-bench" theorem2 "${args[@]}" -detail
  echo
  "$out/bin/salr-bench" theorem2 -shape llama-2048x16 -dense "$out/theorem2/lora"
  echo
fi

if [ "$which" = trained ] || [ "$which" = all ]; then
  sets=()
  if [ -n "${STEPS:-}" ]; then sets=(-set "train.max_steps=$STEPS"); fi
  # Progress goes to stderr; salr-sweep writes results.md when all runs end.
  "$out/bin/salr-sweep" -config sweeps/methods.toml -parallel "${PARALLEL:-2}" "${sets[@]}" >&2
  sed -n '/^Mean ± /,/^Best mean: /p' runs/sweeps/methods/results.md
fi
