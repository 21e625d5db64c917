#!/usr/bin/env bash
# Data parallelism over MPI on this machine: runs the Go test of 1 vs 2 ranks
# (adapters and losses equal within its tolerance, a batch that does not
# split, a failing rank), then trains the quickstart for STEPS steps (default
# 10) as 1 process and as 2 ranks, prints both runs' losses, step times, the
# allreduce cost and the largest adapter difference, and overlays the two
# loss curves in PLOT (default: none drawn).
# Needs Open MPI (apt-get install libopenmpi-dev openmpi-bin) and the assets
# (SALR_ASSETS, default ../shared/assets).
#
#   bash scripts/mpi_test.sh [STEPS [PLOT.png]]
set -euo pipefail
steps="${1:-10}"
plot="${2:-}"
cd "$(dirname "$0")/.."
export SALR_ASSETS="$(cd "${SALR_ASSETS:-../shared/assets}" && pwd)"
command -v mpirun >/dev/null || { echo "mpi_test.sh: mpirun is not on PATH (apt-get install openmpi-bin)" >&2; exit 1; }
tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT

go test -tags mpi -count=1 -run '^TestMPIRanks$' -v ./cmd/salr-train
go build -tags mpi -o "$tmp/" ./cmd/salr-train ./cmd/salr-sweep

sets=(-set "train.max_steps=$steps" -set "train.eval_every=$(( steps >= 50 ? 10 : 0 ))")
echo "== 1 process"
/usr/bin/time -f "wall %e s" "$tmp/salr-train" -config quickstart "${sets[@]}" -set "output.dir=$tmp/one" -quiet
echo "== 2 ranks"
/usr/bin/time -f "wall %e s" mpirun --allow-run-as-root --oversubscribe -np 2 -x SALR_ASSETS \
  "$tmp/salr-train" -config quickstart "${sets[@]}" -set "output.dir=$tmp/two" 2>&1 | grep -E "allreduce|held-out loss [0-9]|wall" || true

# Losses and seconds per step (from each run's metrics.jsonl elapsed times,
# so the preparation before the first step is left out).
python3 - "$tmp/one/metrics.jsonl" "$tmp/two/metrics.jsonl" <<'PY'
import json, sys
runs = [[json.loads(l) for l in open(p)] for p in sys.argv[1:]]
print("step  loss(1 process)  loss(2 ranks)")
for a, b in zip(*runs):
    print(f"{a['step']:4d}  {a['loss']:.6f}        {b['loss']:.6f}")
print(f"max |loss difference| {max(abs(a['loss'] - b['loss']) for a, b in zip(*runs)):.3g}")
for name, r in zip(("1 process", "2 ranks"), runs):
    if len(r) > 1:
        per = (r[-1]["elapsed_seconds"] - r[0]["elapsed_seconds"]) / (len(r) - 1)
        print(f"{name}: {per*1000:.0f} ms per step (steps 2-{len(r)})")
PY

# The adapters of the two runs, value by value.
python3 - "$tmp/one/adapter/adapter_model.safetensors" "$tmp/two/adapter/adapter_model.safetensors" <<'PY'
import json, struct, sys
def read(path):
    b = open(path, "rb").read()
    n = struct.unpack("<Q", b[:8])[0]
    head = json.loads(b[8:8 + n])
    out = {}
    for k, v in head.items():
        if k == "__metadata__":
            continue
        assert v["dtype"] == "F32", v["dtype"]
        lo, hi = v["data_offsets"]
        out[k] = struct.unpack(f"<{(hi - lo) // 4}f", b[8 + n + lo:8 + n + hi])
    return out
a, b = read(sys.argv[1]), read(sys.argv[2])
assert a.keys() == b.keys()
diff = max(abs(x - y) for k in a for x, y in zip(a[k], b[k]))
big = max(abs(x) for k in a for x in a[k])
print(f"adapters (PEFT export), 1 process vs 2 ranks: max |difference| {diff:.3g}, max |value| {big:.3g}, {len(a)} tensors")
PY
if [[ -n "$plot" ]]; then
  "$tmp/salr-sweep" -curves "$tmp/one,$tmp/two" -labels "1 process,2 ranks" -out "$plot"
fi
