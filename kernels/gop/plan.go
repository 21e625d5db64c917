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
// A plan is made for one program (see NewPlan) and checks, as the program
// runs, that its kernel nodes execute in the order it was planned for: a
// divergence is an error from the node, never a silently shared buffer.
type Plan struct {
	PlanStats
	next int // the sequence number of the kernel node expected to run next
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
}

// planned is a kernel node op that a Plan can give a buffer and a place in
// the execution order.
type planned[T kernels.Float] interface {
	cache() (*outputCache[T], tensor.Shape)
	setPlan(p *Plan, seq int)
}

func (op *fwdOp[T]) cache() (*outputCache[T], tensor.Shape) { return &op.out, op.outShape }
func (op *bwdOp[T]) cache() (*outputCache[T], tensor.Shape) { return &op.out, op.outShape }
func (op *fwdOp[T]) setPlan(p *Plan, seq int)               { op.plan, op.seq = p, seq }
func (op *bwdOp[T]) setPlan(p *Plan, seq int)               { op.plan, op.seq = p, seq }

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
func NewPlan[T kernels.Float](g *G.ExprGraph, outputs G.Nodes, transient ...*G.Node) (*Plan, error) {
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
	for i, n := range order {
		for _, c := range children(n) {
			last[c] = max(last[c], i)
		}
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

	// Assign buffers in execution order, best fit among the free ones.
	type buffer struct {
		size    int
		members []planned[T]
	}
	type busy struct{ buf, until int }
	var bufs []*buffer
	var free []int
	var inUse []busy
	p := &Plan{}
	seq := 0
	for i, n := range order {
		op, ok := n.Op().(planned[T])
		if !ok {
			continue
		}
		op.setPlan(p, seq)
		seq++
		_, shape := op.cache()
		if shape.IsScalar() {
			continue
		}
		inUse = slices.DeleteFunc(inUse, func(b busy) bool {
			if b.until < i {
				free = append(free, b.buf)
				return true
			}
			return false
		})
		size := shape.TotalSize()
		pick := -1
		for j, b := range free {
			if pick < 0 || serves(bufs[b].size, bufs[free[pick]].size, size) {
				pick = j
			}
		}
		var b int
		if pick < 0 {
			b = len(bufs)
			bufs = append(bufs, &buffer{})
		} else {
			b = free[pick]
			free = slices.Delete(free, pick, pick+1)
		}
		bufs[b].size = max(bufs[b].size, size)
		bufs[b].members = append(bufs[b].members, op)
		inUse = append(inUse, busy{b, last[i]})
		p.Nodes++
		p.UnsharedBytes += int64(size) * int64(unsafe.Sizeof(T(0)))
	}
	for _, b := range bufs {
		backing := make([]T, b.size)
		for _, op := range b.members {
			c, shape := op.cache()
			c.data = backing[:shape.TotalSize()]
			c.v = tensor.New(tensor.WithShape(shape.Clone()...), tensor.WithBacking(c.data))
		}
		p.Bytes += int64(b.size) * int64(unsafe.Sizeof(T(0)))
	}
	p.Buffers = len(bufs)
	return p, nil
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

// enter records that the kernel node with sequence number seq runs; it fails
// when that is not the node the plan expects next.
func (p *Plan) enter(seq int, name string) error {
	if p == nil {
		return nil
	}
	if seq != p.next {
		return fmt.Errorf("gop: %s runs as kernel node %d, but the buffer plan expects node %d (was Plan.Begin called before the run?)", name, seq, p.next)
	}
	p.next++
	return nil
}
