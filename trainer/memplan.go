package trainer

import (
	"bufio"
	"fmt"
	"math"
	"os"
	"runtime"
	"runtime/debug"
	"runtime/metrics"
	"strconv"
	"strings"
	"sync"
	"unsafe"

	"github.com/salr-go/salr/kernels"
	"github.com/salr-go/salr/kernels/bitmap"
	"github.com/salr-go/salr/model"
)

// MemoryPlan is what a training run must hold, in bytes, by kind.
type MemoryPlan struct {
	// Base is the projection bases as stored (model.BaseBytes).
	Base int64 `json:"base"`
	// Frozen is the other frozen tensors as held: the embedding, the head
	// unless tied, the norms and biases, and the bf16 copies of float32
	// weights a bf16 graph multiplies with (model.Graph.CastBytes).
	Frozen int64 `json:"frozen"`
	// Adapters is the adapters' values (A, B and the per-rank scales).
	Adapters int64 `json:"adapters"`
	// Gradients is the trainables' accumulated gradients.
	Gradients int64 `json:"gradients"`
	// Optimizer is AdamW's two float32 moments per trainable entry.
	Optimizer int64 `json:"optimizer"`
	// Activations is the graph's planned activation and activation-gradient
	// buffers, plus the pooled scratch of the fused head and of attention.
	Activations int64 `json:"activations"`
	// Scratch is the kernels' other buffers: the decoded panels of bitmap
	// and bf16 bases, and the rounded operands of emulated bf16 products.
	Scratch int64 `json:"scratch"`
	Total   int64 `json:"total"`
	// Mapped is the part of Base and Frozen that is a view of a
	// memory-mapped checkpoint: resident, but outside the Go heap.
	Mapped int64 `json:"-"`
}

// Memory is summary.json's "memory": the plan beside what the process used.
type Memory struct {
	Plan MemoryPlan `json:"plan"`
	// MappedBytes is the part of the plan held in memory-mapped files.
	MappedBytes int64 `json:"mapped_bytes"`
	// PeakRSSBytes is the process's peak resident set size at the end of
	// training (omitted where it cannot be read).
	PeakRSSBytes int64 `json:"peak_rss_bytes,omitempty"`
	// GoMemoryLimitBytes is the Go runtime's soft memory limit during
	// training, set from the plan ("plan") or by the environment
	// ("GOMEMLIMIT").
	GoMemoryLimitBytes  int64  `json:"go_memory_limit_bytes"`
	GoMemoryLimitSource string `json:"go_memory_limit_source"`
}

// NewMemoryPlan computes the plan of a prepared model trained with graph
// (nil: no training) and opt (nil: no optimizer).
func NewMemoryPlan(s *Setup, graph *model.Graph[float32], opt *AdamW) MemoryPlan {
	var mp MemoryPlan
	p := s.Params
	maps := readMappings()
	frozen := func(data []float32) {
		n := 4 * int64(len(data))
		mp.Frozen += n
		if len(data) > 0 && maps.contains(unsafe.Pointer(&data[0])) {
			mp.Mapped += n
		}
	}
	panels := false
	for l := range p.Layers {
		L := &p.Layers[l]
		frozen(L.AttnNorm)
		frozen(L.MLPNorm)
		for _, lin := range append(L.Linears(), L.Gates()...) {
			frozen(lin.Bias)
			n := model.BaseBytes(lin.Base)
			mp.Base += n
			if maps.containsMatrix(lin.Base) {
				mp.Mapped += n
			}
			if _, dense := lin.Base.(*kernels.Dense[float32]); !dense {
				panels = true
			}
		}
	}
	for _, d := range s.dynamic {
		// lora-prune-dynamic's W0 copy and 0/1 mask of each pruned projection.
		mp.Base += 4 * int64(len(d.w0)+len(d.keep))
	}
	frozen(p.Norm)
	frozenMatrix := func(m kernels.Matrix[float32]) {
		n := model.BaseBytes(m)
		mp.Frozen += n
		if maps.containsMatrix(m) {
			mp.Mapped += n
		}
	}
	frozenMatrix(p.Embed)
	if !p.Config.TieEmbeddings {
		frozenMatrix(p.Head)
	}
	for _, f := range s.Adapters {
		mp.Adapters += 4 * int64(len(f.A)+len(f.B)+len(f.Scale))
	}
	for _, t := range s.Trainables {
		mp.Gradients += 4 * int64(len(t.Data))
	}
	if opt != nil {
		for i := range opt.M {
			mp.Optimizer += 4 * int64(len(opt.M[i])+len(opt.V[i]))
		}
	}
	if graph != nil {
		c := p.Config
		n := graph.Batch * graph.Seq
		attn := kernels.SelfAttention{Batch: graph.Batch, Seq: graph.Seq, Heads: c.Heads, KVHeads: c.KVHeads, HeadDim: c.HeadDim}
		mp.Frozen += graph.CastBytes()
		mp.Activations = graph.Buffers().Bytes + attn.ScratchBytes(4) +
			kernels.HeadScratchBytes(p.Head, n, len(s.Trainables) > 0) + graph.MoEBytes()
		if panels {
			mp.Scratch = int64(max(bitmap.PipelineDepth, 1)) * int64(bitmap.PanelElems) * 4
		}
		if graph.Precision() == kernels.BF16 {
			width := c.Hidden
			for _, lin := range p.Layers[0].Linears() {
				width = max(width, lin.Base.Rows(), lin.Base.Cols())
			}
			mp.Scratch += kernels.BF16ScratchBytes(n, width)
		}
	}
	mp.Total = mp.Base + mp.Frozen + mp.Adapters + mp.Gradients + mp.Optimizer + mp.Activations + mp.Scratch
	return mp
}

// String is the plan as a small table, one kind per line.
func (mp MemoryPlan) String() string {
	var b strings.Builder
	b.WriteString("memory plan:\n")
	for _, r := range []struct {
		kind string
		n    int64
	}{{"base", mp.Base}, {"frozen", mp.Frozen}, {"adapters", mp.Adapters}, {"gradients", mp.Gradients},
		{"optimizer", mp.Optimizer}, {"activations", mp.Activations}, {"scratch", mp.Scratch}, {"total", mp.Total}} {
		fmt.Fprintf(&b, "  %-12s %10.1f MiB\n", r.kind, mib(r.n))
	}
	fmt.Fprintf(&b, "  (%.1f MiB of base and frozen are memory-mapped file pages, outside the Go heap)", mib(mp.Mapped))
	return b.String()
}

func mib(n int64) float64 { return float64(n) / (1 << 20) }

// Heap is the part of the plan the Go heap holds (Total less Mapped).
func (mp MemoryPlan) Heap() int64 { return mp.Total - mp.Mapped }

// memoryLimitMargin is the allowance above the planned heap when the memory
// limit is set from a plan: the runtime's own metadata and fragmentation,
// the tape machine's small values, the pools' slack and the C heap of
// OpenBLAS (outside the Go heap but in RSS). Training steps at the
// llama-1024x8 bench shape end 30-85 MiB above the plan with the limit set
// and collect no more often than without it; pruning collects about once
// per projection (a few ms each).
func memoryLimitMargin(heap int64) int64 { return 128<<20 + heap/16 }

// envMemoryLimit reports whether the environment sets the Go runtime's
// memory limit (GOMEMLIMIT), which then wins over a plan.
func envMemoryLimit() bool { return os.Getenv("GOMEMLIMIT") != "" }

// setMemoryLimit sets the Go runtime's soft memory limit to heap bytes plus
// the margin, unless GOMEMLIMIT is set, and returns the limit in force, its
// source ("plan" or "GOMEMLIMIT") and the limit it replaced.
func setMemoryLimit(heap int64) (limit int64, source string, previous int64) {
	previous = debug.SetMemoryLimit(-1)
	if envMemoryLimit() {
		return previous, "GOMEMLIMIT", previous
	}
	limit = heap + memoryLimitMargin(heap)
	debug.SetMemoryLimit(limit)
	return limit, "plan", previous
}

// restoreMemoryLimit puts back a limit replaced by setMemoryLimit.
func restoreMemoryLimit(previous int64) {
	if !envMemoryLimit() {
		debug.SetMemoryLimit(previous)
	}
}

// describeLimit is a log line naming the memory limit in force and why.
func describeLimit(limit int64, source, what string) string {
	if limit == math.MaxInt64 {
		return fmt.Sprintf("Go memory limit: none (GOMEMLIMIT=%s)", os.Getenv("GOMEMLIMIT"))
	}
	if source == "GOMEMLIMIT" {
		return fmt.Sprintf("Go memory limit: %.0f MiB from GOMEMLIMIT=%s", mib(limit), os.Getenv("GOMEMLIMIT"))
	}
	return fmt.Sprintf("Go memory limit: %.0f MiB (%s; set GOMEMLIMIT to choose another)", mib(limit), what)
}

// pruningLimit is the Go memory limit while pruning (unless GOMEMLIMIT is
// set): the live heap before pruning, the temporaries of the projections in
// flight (the dense source, W0 ⊙ M, the residual, the scores and the SVD's
// sketches: five float32 copies of the largest projection each), and what
// pruning has stored so far, which grows projection by projection (a
// streamed bf16 checkpoint starts as mapped file pages, outside the heap,
// and ends as compressed bases and SVD factors inside it).
type pruningLimit struct {
	mu       sync.Mutex
	fixed    int64 // live heap and in-flight temporaries
	stored   int64
	previous int64 // the limit before pruning
}

// limitPruning sets the Go memory limit for pruning p and logs it.
func limitPruning(p *model.Params[float32], logf func(string, ...any)) *pruningLimit {
	var largest int64
	for _, L := range p.Layers {
		for _, lin := range L.Linears() {
			largest = max(largest, int64(lin.Base.Rows())*int64(lin.Base.Cols()))
		}
	}
	l := &pruningLimit{fixed: liveHeap() + pruneInFlight*5*4*largest}
	limit, source, previous := setMemoryLimit(l.fixed)
	l.previous = previous
	logf("%s", describeLimit(limit, source, fmt.Sprintf("while pruning: the live heap, five copies of the largest projection per each of %d in flight, and what pruning stores", pruneInFlight)))
	return l
}

// add raises the limit by n bytes that pruning has stored.
func (l *pruningLimit) add(n int64) {
	if l == nil {
		return
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	l.stored += n
	setMemoryLimit(l.fixed + l.stored)
}

// restore puts back the limit that pruning replaced.
func (l *pruningLimit) restore() { restoreMemoryLimit(l.previous) }

// liveHeap is the Go heap's live bytes after a full collection.
func liveHeap() int64 {
	runtime.GC()
	s := []metrics.Sample{{Name: "/gc/heap/live:bytes"}}
	metrics.Read(s)
	if s[0].Value.Kind() != metrics.KindUint64 {
		return 0
	}
	return int64(s[0].Value.Uint64())
}

// peakRSS is the process's peak resident set size (VmHWM of
// /proc/self/status) in bytes, or 0 where it cannot be read.
func peakRSS() int64 {
	f, err := os.Open("/proc/self/status")
	if err != nil {
		return 0
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if rest, ok := strings.CutPrefix(sc.Text(), "VmHWM:"); ok {
			kb, err := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(rest), " kB"), 10, 64)
			if err == nil {
				return kb << 10
			}
		}
	}
	return 0
}

// mappings are the address ranges of the process's file-backed memory maps
// (from /proc/self/maps; none where it cannot be read).
type mappings [][2]uintptr

func readMappings() mappings {
	f, err := os.Open("/proc/self/maps")
	if err != nil {
		return nil
	}
	defer f.Close()
	var m mappings
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		// start-end perms offset dev inode [path]
		fields := strings.Fields(sc.Text())
		if len(fields) < 6 || fields[4] == "0" {
			continue // anonymous: the Go heap, stacks, C allocations
		}
		lo, hi, ok := strings.Cut(fields[0], "-")
		start, err1 := strconv.ParseUint(lo, 16, 64)
		end, err2 := strconv.ParseUint(hi, 16, 64)
		if ok && err1 == nil && err2 == nil {
			m = append(m, [2]uintptr{uintptr(start), uintptr(end)})
		}
	}
	return m
}

func (m mappings) contains(p unsafe.Pointer) bool {
	a := uintptr(p)
	for _, r := range m {
		if a >= r[0] && a < r[1] {
			return true
		}
	}
	return false
}

// containsMatrix reports whether the values of a dense or bitmap matrix are
// in a mapped file; other kinds count as heap.
func (m mappings) containsMatrix(w kernels.Matrix[float32]) bool {
	switch w := w.(type) {
	case *kernels.Dense[float32]:
		return len(w.W) > 0 && m.contains(unsafe.Pointer(&w.W[0]))
	case *bitmap.DenseBF16:
		bits := w.Bits()
		return len(bits) > 0 && m.contains(unsafe.Pointer(&bits[0]))
	case *bitmap.Matrix:
		parts := w.Parts()
		return len(parts.RowPtr) > 0 && m.contains(unsafe.Pointer(&parts.RowPtr[0]))
	}
	return false
}
