package bitmap

import (
	"context"
	"io/fs"
	"os"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"
	"unsafe"

	"github.com/salr-go/salr/kernels"
)

// DefaultLLCBytes is the last-level cache size assumed when sysfs does not
// give one: 32 MB, the L3 of one Zen 3 CCD.
const DefaultLLCBytes = 32 << 20

// LastLevelCache returns the size of CPU 0's highest-level cache as listed in
// /sys/devices/system/cpu/cpu0/cache/index*/{level,size}, and ok = false with
// DefaultLLCBytes when sysfs does not list one.
func LastLevelCache() (bytes int64, ok bool) {
	return lastLevelCache(os.DirFS("/sys/devices/system/cpu/cpu0/cache"))
}

// lastLevelCache reads the cache levels and sizes of index*/ in fsys.
func lastLevelCache(fsys fs.FS) (bytes int64, ok bool) {
	dirs, _ := fs.Glob(fsys, "index*")
	best := 0
	for _, d := range dirs {
		level, err1 := readSysfsInt(fsys, d+"/level")
		size, err2 := readSysfsSize(fsys, d+"/size")
		if err1 != nil || err2 != nil || size <= 0 {
			continue
		}
		if level > best || (level == best && size > bytes) {
			best, bytes = level, size
		}
	}
	if best == 0 {
		return DefaultLLCBytes, false
	}
	return bytes, true
}

func readSysfsInt(fsys fs.FS, name string) (int, error) {
	b, err := fs.ReadFile(fsys, name)
	if err != nil {
		return 0, err
	}
	return strconv.Atoi(strings.TrimSpace(string(b)))
}

// readSysfsSize parses a sysfs cache size such as "32768K" (K, M or G are
// powers of 1024; no suffix is bytes).
func readSysfsSize(fsys fs.FS, name string) (int64, error) {
	b, err := fs.ReadFile(fsys, name)
	if err != nil {
		return 0, err
	}
	s := strings.TrimSpace(string(b))
	shift := 0
	switch {
	case strings.HasSuffix(s, "K"):
		shift = 10
	case strings.HasSuffix(s, "M"):
		shift = 20
	case strings.HasSuffix(s, "G"):
		shift = 30
	}
	if shift > 0 {
		s = s[:len(s)-1]
	}
	v, err := strconv.ParseInt(s, 10, 64)
	return v << shift, err
}

// ColdBytesFor is the total size of the weight copies a cold-cache sweep
// cycles through for a last-level cache of llc bytes: 4× the cache.
func ColdBytesFor(llc int64) int64 { return 4 * llc }

// bandwidthCols is the row length of the buffer when StreamBandwidth reads
// it through the BLAS as a matrix-vector product.
const bandwidthCols = 4096

// StreamBandwidth measures the machine's streaming read bandwidth over a
// buffer of about bytes bytes (make it several times the last-level cache)
// in two ways, in turns for passes passes each: GOMAXPROCS goroutines summing
// their part of it (sumWords), and the BLAS multiplying it, viewed as an fp32
// matrix of bandwidthCols columns, by a vector (the dense fp32 GEMV, which
// prefetches in software where the Go loop cannot). The result is a
// KernelResult with Case "bandwidth" and Op "read" for the faster of the two
// by median time (Kernels "go" or the BLAS backend's name), its GBPS (and
// GBPerS) the buffer bytes over that median. Cancelling ctx stops it between
// passes.
func StreamBandwidth(ctx context.Context, bytes int64, passes int) (KernelResult, error) {
	passes = max(1, passes)
	threads := runtime.GOMAXPROCS(0)
	rows := int(max(1, bytes/(4*bandwidthCols)))
	n := rows * bandwidthCols / 2 // 64-bit words
	buf := make([]uint64, n)
	for i := range buf {
		buf[i] = 0x3f800000_3f800000 // two fp32 ones: no subnormals in the GEMV
	}
	sums := make([]uint64, threads)
	sum := func() {
		var wg sync.WaitGroup
		for t := range threads {
			lo, hi := n*t/threads, n*(t+1)/threads
			wg.Go(func() { sums[t] = sumWords(buf[lo:hi]) })
		}
		wg.Wait() // sums is on the heap: the loads cannot be dropped
	}
	w := unsafe.Slice((*float32)(unsafe.Pointer(unsafe.SliceData(buf))), 2*n)
	x, y := make([]float32, bandwidthCols), make([]float32, rows)
	gemv := func() {
		kernels.Gemm(false, true, 1, rows, bandwidthCols, 1, x, bandwidthCols, w, bandwidthCols, 0, y, rows)
	}
	ways := []struct {
		name  string
		pass  func()
		times []float64
	}{{"go", sum, nil}, {kernels.BackendName(), gemv, nil}}
	for i := range ways {
		ways[i].pass() // warm-up: page faults, threads
	}
	for p := range passes {
		for i := range ways {
			if err := ctx.Err(); err != nil {
				return KernelResult{}, err
			}
			way := &ways[(p+i)%len(ways)]
			t0 := time.Now()
			way.pass()
			way.times = append(way.times, float64(time.Since(t0).Nanoseconds())/1e6)
		}
	}
	best, med := 0, 0.0
	for i := range ways {
		slices.Sort(ways[i].times)
		if m := Median(ways[i].times); i == 0 || m < med {
			best, med = i, m
		}
	}
	times := ways[best].times
	gbps := float64(n*8) / med / 1e6
	return KernelResult{
		Bench: "kernel", Case: "bandwidth", Op: "read",
		MedianMS: med, MinMS: times[0], MaxMS: times[len(times)-1],
		GBPerS: gbps, GBPS: gbps, Bytes: int64(n) * 8,
		Copies: 1, Reps: passes, Kernels: ways[best].name, Threads: threads,
		Paths: CurrentPaths(),
	}, nil
}

// readStreams is the number of interleaved sequential streams sumWords reads
// at once: one stream per core does not keep enough cache-line fetches in
// flight to saturate DRAM (on Zen 3 about 15 GB/s per core with one stream,
// over 20 with eight).
const readStreams = 8

// sumWords sums v, reading it as readStreams equal parts in parallel, 64 bytes
// of each part per step.
func sumWords(v []uint64) uint64 {
	n := len(v) / readStreams / 8 * 8 // words per stream
	var acc [readStreams]uint64
	for i := 0; i < n; i += 8 {
		for j := range readStreams {
			w := v[j*n+i : j*n+i+8 : j*n+i+8]
			acc[j] += w[0] + w[1] + w[2] + w[3] + w[4] + w[5] + w[6] + w[7]
		}
	}
	var s uint64
	for _, a := range acc {
		s += a
	}
	for _, x := range v[readStreams*n:] {
		s += x
	}
	return s
}
