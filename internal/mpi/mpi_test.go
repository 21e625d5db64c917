package mpi

import (
	"os"
	"testing"
	"time"
)

// TestWorld checks the collectives on however many ranks run the test: one
// (go test, with or without the tag mpi), or several under mpirun:
//
//	go test -tags mpi -c -o /tmp/mpi.test ./internal/mpi
//	mpirun -np 2 /tmp/mpi.test -test.v
//
// Every rank fills a buffer from its rank; the sums and the broadcast are
// known in closed form. With SALR_MPI_BENCH set it also times allreduces of
// that many float32 values.
func TestWorld(t *testing.T) {
	w, err := Init()
	if err != nil {
		t.Fatal(err)
	}
	defer func() {
		if err := w.Finalize(); err != nil {
			t.Error(err)
		}
	}()
	n, rank := w.Size(), w.Rank()
	if n < 1 || rank < 0 || rank >= n || (!Enabled && n != 1) {
		t.Fatalf("rank %d of %d", rank, n)
	}
	buf := make([]float32, 1000)
	for i := range buf {
		buf[i] = float32(rank*1000 + i)
	}
	if err := w.AllreduceSum(buf); err != nil {
		t.Fatal(err)
	}
	for i, v := range buf {
		// Σ_r (1000r + i) = 1000·n(n-1)/2 + n·i
		if want := float32(1000*n*(n-1)/2 + n*i); v != want {
			t.Fatalf("rank %d: sum[%d] = %v, want %v", rank, i, v, want)
		}
	}
	for i := range buf {
		buf[i] = float32(rank + i)
	}
	if err := w.Bcast(buf, 0); err != nil {
		t.Fatal(err)
	}
	for i, v := range buf {
		if v != float32(i) {
			t.Fatalf("rank %d: broadcast[%d] = %v, want rank 0's %d", rank, i, v, i)
		}
	}
	if err := w.Bcast(buf, n); err == nil {
		t.Error("a broadcast from a rank that does not exist was accepted")
	}
	if err := w.Barrier(); err != nil {
		t.Fatal(err)
	}
	if s := os.Getenv("SALR_MPI_BENCH"); s != "" && n > 1 {
		bench(t, w, s)
	}
}

// bench logs the time of an allreduce of size (a decimal count) float32
// values, after a barrier, averaged over up to 200 (fewer for large sizes);
// with SALR_MPI_BENCH_BUCKET set, as allreduces of pieces of that many
// values, one after another (how the trainer reduces large gradients).
func bench(t *testing.T, w *World, size string) {
	count := decimal(t, "SALR_MPI_BENCH", size)
	piece := count
	if s := os.Getenv("SALR_MPI_BENCH_BUCKET"); s != "" {
		piece = max(1, decimal(t, "SALR_MPI_BENCH_BUCKET", s))
	}
	buf := make([]float32, count)
	if err := w.Barrier(); err != nil {
		t.Fatal(err)
	}
	reps := min(200, max(5, 50_000_000/count))
	start := time.Now()
	for range reps {
		for lo := 0; lo < count; lo += piece {
			if err := w.AllreduceSum(buf[lo:min(lo+piece, count)]); err != nil {
				t.Fatal(err)
			}
		}
	}
	t.Logf("rank %d of %d: allreduce of %d float32 (%.2f MB) in pieces of %d: %.3f ms", w.Rank(), w.Size(), count, float64(4*count)/1e6, piece,
		float64(time.Since(start).Microseconds())/1e3/float64(reps))
}

// decimal parses the decimal count s of the variable name.
func decimal(t *testing.T, name, s string) int {
	n := 0
	for _, c := range s {
		if c < '0' || c > '9' {
			t.Fatalf("%s=%q: not a count", name, s)
		}
		n = 10*n + int(c-'0')
	}
	return n
}
