#!/usr/bin/env bash
# The project's test command (README "Install"): vet, the unit tests, the
# pure-Go BLAS build of the kernels, the MPI build's tests where Open MPI is
# installed, and a brief run of every fuzz target.
# Needs SALR_ASSETS (default ../shared/assets); FUZZTIME (default 20000x)
# sets how long each fuzz target runs. The default is a count, not a duration:
# Go 1.26's fuzz coordinator can report a bare "context deadline exceeded"
# failure when a duration -fuzztime expires while a worker is mid-call
# (golang/go#75804, fixed in Go 1.27); a count budget has no deadline to race.
# FUZZMINIMIZETIME (default 500x) bounds the minimisation of each new
# interesting input: go test's default is 60s per input, during which the run
# shows 0 execs/s and the -fuzztime count makes no progress, so a brief fuzz
# run can stall for minutes and still print PASS. It is a count for the same
# reason as FUZZTIME.
set -euo pipefail
cd "$(dirname "$0")/.."
export SALR_ASSETS="${SALR_ASSETS:-../shared/assets}"
fuzztime="${FUZZTIME:-20000x}"
minimizetime="${FUZZMINIMIZETIME:-500x}"

echo "== gofmt"
unformatted=$(gofmt -l $(git ls-files '*.go' 2>/dev/null || find . -name '*.go'))
if [ -n "$unformatted" ]; then
  echo "gofmt would change: $unformatted" >&2
  exit 1
fi
echo "== go vet"
go vet ./...
echo "== go test"
go test -count=1 ./...
echo "== go test -tags purego (pure-Go BLAS fallback)"
go test -count=1 -tags purego ./kernels/...
if command -v mpirun >/dev/null && pkg-config --exists ompi-c 2>/dev/null; then
  echo "== go test -tags mpi (data parallelism over MPI: 1 vs 2 ranks under mpirun)"
  go vet -tags mpi ./internal/mpi ./cmd/...
  go test -count=1 -tags mpi ./internal/mpi ./cmd/salr-train
else
  echo "== go test -tags mpi: skipped (no Open MPI here: apt-get install libopenmpi-dev openmpi-bin)"
fi
echo "== fuzz (${fuzztime} each, minimising ${minimizetime} per input)"
# Every FuzzXxx function in a _test.go file, run on its own package.
grep -rlE --include='*_test.go' '^func Fuzz[A-Za-z0-9_]+\(' . | sort | while read -r file; do
  pkg="./$(dirname "${file#./}")"
  grep -oE '^func Fuzz[A-Za-z0-9_]+' "$file" | sed 's/^func //' | while read -r name; do
    echo "-- $pkg $name"
    go test -run '^$' -fuzz "^${name}\$" -fuzztime "$fuzztime" -fuzzminimizetime "$minimizetime" "$pkg"
  done
done
echo "== all tests passed"
