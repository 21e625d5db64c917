package parallel

import (
	"sync/atomic"
	"testing"
)

// TestForEachCallsEveryIndexOnce: every index once, on at most workers
// goroutines at a time.
func TestForEachCallsEveryIndexOnce(t *testing.T) {
	for _, workers := range []int{0, 1, 3} {
		const n = 100
		var calls [n]atomic.Int32
		var running, peak atomic.Int32
		ForEach(n, workers, func(i int) {
			r := running.Add(1)
			for p := peak.Load(); r > p && !peak.CompareAndSwap(p, r); p = peak.Load() {
			}
			calls[i].Add(1)
			running.Add(-1)
		})
		for i := range calls {
			if c := calls[i].Load(); c != 1 {
				t.Fatalf("workers %d: index %d called %d times", workers, i, c)
			}
		}
		if workers > 0 && int(peak.Load()) > workers {
			t.Errorf("workers %d: %d calls at once", workers, peak.Load())
		}
	}
	ForEach(0, 2, func(int) { t.Error("called for n = 0") })
}
