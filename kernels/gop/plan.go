package gop

import (
	"fmt"
	"slices"
	"unsafe"

	"github.com/salr-go/salr/kernels"
	G "gorgonia.org/gorgonia"
	"gorgonia.org/tensor"
)

// Plan shares output buffers between the kernel nodes of a compiled program
// whose values are never live at the same time, the way a compiler assigns
// registers. gorgonia's own register allocator gives every node a register
// of its own, so without a plan a training graph keeps every activation and
// every activation gradient of a step in memory at once.
//
// A plan can also checkpoint segments of the forward pass (gradient
// checkpointing, see NewPlan): their values are dropped after the forward
// pass and computed again just before the backward pass first needs them.
//
// A plan is made for one program (see NewPlan) and checks, as the program
// runs, that its kernel nodes execute in the order it was planned for: a
// divergence is an error from the node, never a silently shared buffer.
type Plan struct {
	PlanStats
	next int // the sequence number of the kernel node expected to run next
	// recompute holds, by the sequence number of the node they run before,
	// the checkpointed nodes to run again, in forward order.
	recompute map[int][]recomputer
	// skipRecompute disables recomputation (tests prove it matters).
	skipRecompute bool
}

// PlanStats describes the buffers of a Plan.
type PlanStats struct {
	// Bytes is the size of the shared buffers.
	Bytes int64
	// UnsharedBytes is what the same nodes would hold with a buffer each.
	UnsharedBytes int64
	// Buffers is the number of shared buffers; Nodes the number of kernel
	// nodes writing to them.
	Buffers, Nodes int
	// Recomputed is the number of checkpointed kernel nodes that every run
	// computes a second time in the backward pass.
	Recomputed int
}

// planned is a kernel node op that a Plan can give a buffer and a place in
// the execution order.
type planned[T kernels.Float] interface {
	cache() (*outputCache[T], tensor.Shape)
	setPlan(p *Plan, seq int)
}

// recomputer is a checkpointed forward node: it runs its kernel again on the
// inputs of its last forward run.
type recomputer interface{ recompute() error }

func (op *fwdOp[T]) cache() (*outputCache[T], tensor.Shape) { return &op.out, op.outShape }
func (op *bwdOp[T]) cache() (*outputCache[T], tensor.Shape) { return &op.out, op.outShape }
func (op *fwdOp[T]) setPlan(p *Plan, seq int)               { op.plan, op.seq = p, seq }
func (op *bwdOp[T]) setPlan(p *Plan, seq int)               { op.plan, op.seq = p, seq }

// span is an interval of time steps of a run (see checkpoints.time), both
// ends included.
type span struct{ from, until int }

func (s span) overlaps(t span) bool { return s.from <= t.until && t.from <= s.until }

// NewPlan plans the output buffers of the program gorgonia.CompileFunction
// compiles from g for outputs: the nodes are taken in the order the compiler
// executes them (the stabilised topological sort of the outputs' subgraph),
// and a node's buffer is free for another node once every node that reads it
// has run. Program outputs stay live to the end, except the kernel nodes in
// transient: outputs read only as they are produced (the gradients of
// learnables bound as dual values, which the tape machine adds to the dual
// value right after the node runs). A node of gorgonia's own
// (a gradient sum, say) that may overwrite an input in place or return a
// view of its inputs keeps those inputs' buffers alive as long as its own
// value. Call Begin before every run.
//
// Each segment is a group of forward kernel nodes to checkpoint, typically
// one decoder layer without the node producing its output. Their values are
// live during the forward pass only as long as the forward pass reads them;
// just before the first backward node that reads any of them runs, the plan
// runs the segment's nodes again, in forward order, on the inputs they read
// in the forward pass, and the values stay live until their last backward
// reader. The values a segment reads from outside (the layer's input, say)
// are kept live until then. Nodes with a scalar output and nodes the program
// does not run are left out of a segment; a segment that no backward node
// reads is not recomputed. Kernels must compute the same output from the
// same inputs each time (the adapters' dropout depends on the step, not on a
// count of calls), so the results are bitwise those of the program without
// segments.
func NewPlan[T kernels.Float](g *G.ExprGraph, outputs, transient G.Nodes, segments ...G.Nodes) (*Plan, error) {
	sub := g.ExactSubgraphRoots(outputs...)
	order, err := G.Sort(sub)
	if err != nil {
		return nil, fmt.Errorf("gop: planning buffers: %w", err)
	}
	slices.Reverse(order)
	pos := make(map[*G.Node]int, len(order))
	for i, n := range order {
		pos[n] = i
	}
	children := func(n *G.Node) []int {
		var cs []int
		for it := sub.From(n.ID()); it.Next(); {
			cs = append(cs, pos[it.Node().(*G.Node)])
		}
		return cs
	}
	// last[i] is the position of the last node that reads node i's value.
	last := make([]int, len(order))
	for i := range order {
		last[i] = i
	}
	for _, n := range outputs {
		_, kernel := n.Op().(planned[T])
		if i, ok := pos[n]; ok && !(kernel && slices.Contains(transient, n)) {
			last[i] = len(order)
		}
	}
	readers := make([][]int, len(order))
	for i, n := range order {
		for _, c := range children(n) {
			last[c] = max(last[c], i)
			readers[c] = append(readers[c], i)
		}
	}
	ck, err := checkpoint[T](order, children, readers, last, segments)
	if err != nil {
		return nil, err
	}
	for i := len(order) - 1; i >= 0; i-- {
		op := order[i].Op()
		if _, ok := op.(planned[T]); ok || op == nil {
			continue
		}
		// gorgonia's own op may return an input's buffer as its value.
		cs := children(order[i])
		if k := op.OverwritesInput(); !op.ReturnsPtr() {
			if k < 0 || k >= len(cs) {
				continue
			}
			cs = cs[k : k+1]
		}
		for _, c := range cs {
			last[c] = max(last[c], last[i])
		}
	}

	// The values to place: each kernel node's output with the time spans it
	// is live in, in execution order.
	var vals []value
	var ops []planned[T]
	p := &Plan{}
	seq := 0
	for i, n := range order {
		op, ok := n.Op().(planned[T])
		if !ok {
			continue
		}
		op.setPlan(p, seq)
		if nodes := ck.at[i]; len(nodes) > 0 {
			if p.recompute == nil {
				p.recompute = make(map[int][]recomputer)
			}
			for _, j := range nodes {
				p.recompute[seq] = append(p.recompute[seq], order[j].Op().(recomputer))
			}
			p.Recomputed += len(nodes)
		}
		seq++
		_, shape := op.cache()
		if shape.IsScalar() {
			continue
		}
		v := value{size: shape.TotalSize(), spans: []span{{ck.time[i], ck.time[last[i]]}}}
		if again, ok := ck.again[i]; ok {
			v.spans = append(v.spans, again)
		}
		vals = append(vals, v)
		ops = append(ops, op)
		p.Nodes++
		p.UnsharedBytes += int64(v.size) * int64(unsafe.Sizeof(T(0)))
	}
	// Two heuristics; the plan keeps the one needing less memory.
	sizes, buf := assignInOrder(vals)
	if s2, b2 := assignBySize(vals); total(s2) < total(sizes) {
		sizes, buf = s2, b2
	}
	backing := make([][]T, len(sizes))
	for b, size := range sizes {
		backing[b] = make([]T, size)
		p.Bytes += int64(size) * int64(unsafe.Sizeof(T(0)))
	}
	for k, op := range ops {
		c, shape := op.cache()
		c.data = backing[buf[k]][:shape.TotalSize()]
		c.v = tensor.New(tensor.WithShape(shape.Clone()...), tensor.WithBacking(c.data))
	}
	p.Buffers = len(sizes)
	return p, nil
}

// value is a kernel node's output as the buffer assignment sees it: its
// size in elements and the time spans it is live in (two for a recomputed
// value), in execution order.
type value struct {
	size  int
	spans []span
}

// conflicts reports whether v is live at some time in spans.
func (v value) conflicts(spans []span) bool {
	for _, s := range v.spans {
		for _, t := range spans {
			if s.overlaps(t) {
				return true
			}
		}
	}
	return false
}

func total(sizes []int) int {
	n := 0
	for _, s := range sizes {
		n += s
	}
	return n
}

// assignInOrder gives each value a buffer in execution order: the best fit
// (see serves) among the buffers free when it is written that no later span
// of a recomputed value has reserved at a time it is live. It returns the
// buffers' sizes and each value's buffer.
func assignInOrder(vals []value) (sizes, buf []int) {
	type busy struct{ buf, until int }
	var reserved [][]span // by buffer
	var free []int
	var inUse []busy
	buf = make([]int, len(vals))
	for k, v := range vals {
		now := v.spans[0].from
		inUse = slices.DeleteFunc(inUse, func(b busy) bool {
			if b.until < now {
				free = append(free, b.buf)
				return true
			}
			return false
		})
		fits := func(b int) bool { return !(value{spans: reserved[b]}).conflicts(v.spans) }
		pick := -1
		for j, b := range free {
			if fits(b) && (pick < 0 || serves(sizes[b], sizes[free[pick]], v.size)) {
				pick = j
			}
		}
		var b int
		if pick < 0 {
			b = len(sizes)
			sizes, reserved = append(sizes, 0), append(reserved, nil)
		} else {
			b = free[pick]
			free = slices.Delete(free, pick, pick+1)
		}
		sizes[b] = max(sizes[b], v.size)
		reserved[b] = append(reserved[b], v.spans[1:]...)
		inUse = append(inUse, busy{b, v.spans[0].until})
		buf[k] = b
	}
	return sizes, buf
}

// assignBySize gives each value a buffer from the largest value to the
// smallest: the smallest buffer holding no value live at the same time, or
// a new one. Recomputed values, live twice, leave gaps that smaller values
// fill this way.
func assignBySize(vals []value) (sizes, buf []int) {
	idx := make([]int, len(vals))
	for k := range idx {
		idx[k] = k
	}
	slices.SortStableFunc(idx, func(a, b int) int { return vals[b].size - vals[a].size })
	var members [][]int // by buffer
	buf = make([]int, len(vals))
	for _, k := range idx {
		pick := -1
	buffers:
		for b, ms := range members {
			if pick >= 0 && sizes[b] >= sizes[pick] {
				continue
			}
			for _, m := range ms {
				if vals[m].conflicts(vals[k].spans) {
					continue buffers
				}
			}
			pick = b
		}
		if pick < 0 {
			pick = len(sizes)
			sizes, members = append(sizes, vals[k].size), append(members, nil)
		}
		members[pick] = append(members[pick], k)
		buf[k] = pick
	}
	return sizes, buf
}

// checkpoints is where a plan recomputes its segments.
type checkpoints struct {
	// at lists, by the position of the node they run before, the positions
	// of the nodes to recompute, in forward order.
	at map[int][]int
	// time maps each position of the execution order, and len(order) for
	// the end of the run, to a time step of the run, in which each
	// recomputation has a step of its own just before the node it runs
	// before. Without recomputations time[i] is i.
	time []int
	// again is, by position, the time span a recomputed value is live in
	// from its recomputation on.
	again map[int]span
}

// checkpoint validates the segments and finds where each is recomputed. It
// sets last of a recomputed value to its last forward reader and extends
// last of the values segments read from outside to their recomputation.
func checkpoint[T kernels.Float](order G.Nodes, children func(*G.Node) []int, readers [][]int, last []int, segments []G.Nodes) (checkpoints, error) {
	ck := checkpoints{at: map[int][]int{}, again: map[int]span{}}
	// seg[i] is 1 + the index of the segment holding position i, or 0.
	seg := make([]int, len(order))
	pos := make(map[*G.Node]int, len(order))
	for i, n := range order {
		pos[n] = i
	}
	var members [][]int
	for s, nodes := range segments {
		var in []int
		for _, n := range nodes {
			i, ok := pos[n]
			if !ok {
				continue // not part of the program
			}
			op, ok := n.Op().(*fwdOp[T])
			if !ok {
				return ck, fmt.Errorf("gop: checkpointed node %v is not a forward kernel node", n)
			}
			if op.outShape.IsScalar() {
				continue
			}
			if seg[i] != 0 && seg[i] != s+1 {
				return ck, fmt.Errorf("gop: node %v is in two checkpointed segments", n)
			}
			if seg[i] == 0 {
				seg[i] = s + 1
				in = append(in, i)
			}
		}
		slices.Sort(in)
		members = append(members, in)
	}
	kernel := func(i int) bool { _, ok := order[i].Op().(planned[T]); return ok }
	// segAt[s] is the position segment s is recomputed before, or -1: the
	// first node outside the forward pass (not a forward kernel node) that
	// reads a value of the segment.
	segAt := make([]int, len(members))
	for s, in := range members {
		at := -1
		for _, i := range in {
			for _, r := range readers[i] {
				switch {
				case seg[r] == s+1:
				case !kernel(r):
					return ck, fmt.Errorf("gop: checkpointed value %v is read by %v, which is not a kernel node", order[i], order[r])
				case seg[r] != 0:
					return ck, fmt.Errorf("gop: checkpointed value %v is read by %v of another segment", order[i], order[r])
				default:
					if _, fwd := order[r].Op().(*fwdOp[T]); !fwd && (at < 0 || r < at) {
						at = r
					}
				}
			}
		}
		segAt[s] = at
		if at < 0 {
			continue // no backward pass reads it
		}
		if end := in[len(in)-1]; at <= end {
			return ck, fmt.Errorf("gop: %v reads checkpointed values before %v, the end of their segment, has run", order[at], order[end])
		}
		ck.at[at] = append(ck.at[at], in...)
	}

	ck.time = make([]int, len(order)+1)
	redo := map[int]int{} // the time step of each recomputation, by position
	t := 0
	for i := range ck.time {
		for _, j := range ck.at[i] {
			redo[j] = t
			t++
		}
		ck.time[i] = t
		t++
	}
	for s, in := range members {
		at := segAt[s]
		if at < 0 {
			continue
		}
		for _, i := range in {
			fwd, live := i, span{redo[i], redo[i]}
			for _, r := range readers[i] {
				switch {
				case seg[r] == s+1: // read in the forward pass and in the recomputation
					fwd = max(fwd, r)
					live.until = max(live.until, redo[r])
				case r < at:
					fwd = max(fwd, r)
				default:
					live.until = max(live.until, ck.time[r])
				}
			}
			if last[i] == len(order) { // a program output
				live.until = ck.time[len(order)]
			}
			last[i] = fwd
			ck.again[i] = live
			order[i].Op().(*fwdOp[T]).keep = true
			for _, c := range children(order[i]) {
				if seg[c] == s+1 {
					continue
				}
				if err := outsideInput[T](order, children, readers, c); err != nil {
					return ck, fmt.Errorf("gop: checkpointed node %v: %w", order[i], err)
				}
				last[c] = max(last[c], at)
			}
		}
	}
	return ck, nil
}

// outsideInput checks that the value at position c, which a checkpointed
// node reads from outside its segment, still holds its value when the
// segment is recomputed: it is an input, or a kernel node's value that no
// node of gorgonia's own may overwrite in place.
func outsideInput[T kernels.Float](order G.Nodes, children func(*G.Node) []int, readers [][]int, c int) error {
	op := order[c].Op()
	if op == nil {
		return nil
	}
	if _, ok := op.(planned[T]); !ok {
		return fmt.Errorf("it reads %v, which is not an input or a kernel node", order[c])
	}
	for _, r := range readers[c] {
		rop := order[r].Op()
		if _, ok := rop.(planned[T]); ok {
			continue
		}
		if rop.ReturnsPtr() {
			return fmt.Errorf("it reads %v, which %v may return a view of", order[c], order[r])
		}
		cs := children(order[r])
		if k := rop.OverwritesInput(); k >= 0 && k < len(cs) && cs[k] == c {
			return fmt.Errorf("it reads %v, which %v may overwrite in place", order[c], order[r])
		}
	}
	return nil
}

// serves reports whether a free buffer of size a serves a node of size need
// better than one of size b: one that fits beats one that does not; of two
// that fit the smaller is better, of two that do not the larger (it grows
// least).
func serves(a, b, need int) bool {
	if (a >= need) != (b >= need) {
		return a >= need
	}
	if a >= need {
		return a < b
	}
	return a > b
}

// Begin starts a run of the planned program.
func (p *Plan) Begin() { p.next = 0 }

// enter records that the kernel node with sequence number seq runs, after
// recomputing the checkpointed nodes planned to run before it; it fails when
// that is not the node the plan expects next.
func (p *Plan) enter(seq int, name string) error {
	if p == nil {
		return nil
	}
	if seq != p.next {
		return fmt.Errorf("gop: %s runs as kernel node %d, but the buffer plan expects node %d (was Plan.Begin called before the run?)", name, seq, p.next)
	}
	p.next++
	if p.skipRecompute {
		return nil
	}
	for _, r := range p.recompute[seq] {
		if err := r.recompute(); err != nil {
			return err
		}
	}
	return nil
}
