// Package gop turns the forward/backward functions of package kernels into
// gorgonia custom ops, so a training graph holds one node per layer piece
// (RMSNorm, attention, a frozen projection, the fused adapters, ...) instead of
// dozens of tiny generic nodes.
//
// A layer piece implements Kernel: a forward function and, for each
// differentiable input, a backward function. Apply wraps it as a node. When
// gorgonia differentiates the graph, every differentiable input gets its own
// backward node; a backward node that no requested gradient depends on (the
// gradient of a frozen weight, say) is never compiled as long as the program is
// built with gorgonia.CompileFunction over the wanted outputs, so frozen weights
// cost no gradient memory and no time.
//
// Kernels are generic over the element type: float32 for real work, float64 for
// gradient checks (CheckGradients).
package gop

import (
	"fmt"
	"hash"
	"hash/fnv"

	"github.com/chewxy/hm"
	"github.com/salr-go/salr/kernels"
	G "gorgonia.org/gorgonia"
	"gorgonia.org/tensor"
)

func init() {
	// One switch point for BLAS: gorgonia and tensor use the backend kernels use.
	G.Use(kernels.Backend())
}

// Arg is one input of a kernel as the kernel sees it: its shape and its data,
// floats in Data or integers (token ids, targets) in Ints.
type Arg[T kernels.Float] struct {
	Shape tensor.Shape
	Data  []T
	Ints  []int
}

// Kernel is one differentiable layer piece.
type Kernel[T kernels.Float] interface {
	// Name identifies the function and its parameters; it is the op's hash,
	// so two kernels with the same name must compute the same function.
	Name() string
	// OutShape returns the output shape for the given input shapes.
	OutShape(in []tensor.Shape) (tensor.Shape, error)
	// Forward computes the output; it must overwrite all of out.
	Forward(out []T, in []Arg[T])
	// Differentiable reports whether Backward supports input i.
	Differentiable(i int) bool
	// Backward computes the gradient of the loss with respect to input wrt,
	// given the output's gradient dOut; it must overwrite all of dIn.
	Backward(wrt int, dIn, dOut []T, in []Arg[T])
}

// BackwardReader is implemented by a kernel whose Backward for some input
// needs other inputs only for their shapes (a sum, a frozen projection, a
// concatenation). Inputs it does not read reach Backward with their shape
// and nil data, and the graph does not keep their values alive for it, so
// their buffers can be reused earlier (see Plan). Kernels without it read
// every input.
type BackwardReader interface {
	// BackwardReads reports whether Backward for input wrt reads the data
	// of input i.
	BackwardReads(wrt, i int) bool
}

// backwardReads reports whether k's Backward for input wrt reads input i.
func backwardReads[T kernels.Float](k Kernel[T], wrt, i int) bool {
	r, ok := k.(BackwardReader)
	return !ok || r.BackwardReads(wrt, i)
}

// Apply adds k to the graph as a node whose inputs are the given nodes.
func Apply[T kernels.Float](k Kernel[T], inputs ...*G.Node) (*G.Node, error) {
	if len(inputs) == 0 {
		return nil, fmt.Errorf("gop: %s: no inputs", k.Name())
	}
	shapes := make([]tensor.Shape, len(inputs))
	types := make([]hm.Type, len(inputs))
	for i, n := range inputs {
		shapes[i] = n.Shape().Clone()
		types[i] = n.Type()
	}
	outShape, err := k.OutShape(shapes)
	if err != nil {
		return nil, fmt.Errorf("gop: %s: %w", k.Name(), err)
	}
	op := &fwdOp[T]{k: k, inTypes: types, outShape: outShape}
	return G.ApplyOp(op, inputs...)
}

// Dtype is the gorgonia dtype of T.
func Dtype[T kernels.Float]() tensor.Dtype {
	var z T
	if _, ok := any(z).(float64); ok {
		return tensor.Float64
	}
	return tensor.Float32
}

// typeOf is the gorgonia type of a value of the given shape and element type T.
func typeOf[T kernels.Float](s tensor.Shape) hm.Type {
	if s.IsScalar() {
		return Dtype[T]()
	}
	return G.TensorType{Dims: s.Dims(), Of: Dtype[T]()}
}

// hashName hashes an op's identity.
func hashName(h hash.Hash, kind, name string) { fmt.Fprintf(h, "%s(%s)", kind, name) }

func hash32(kind, name string) uint32 {
	h := fnv.New32a()
	hashName(h, kind, name)
	return h.Sum32()
}

// args converts gorgonia values into kernel arguments.
func args[T kernels.Float](what string, vals []G.Value) ([]Arg[T], error) {
	out := make([]Arg[T], len(vals))
	for i, v := range vals {
		switch x := v.(type) {
		case tensor.Tensor:
			out[i].Shape = x.Shape()
			switch d := x.Data().(type) {
			case []T:
				out[i].Data = d
			case []int:
				out[i].Ints = d
			case T: // a 0-d tensor
				out[i].Data = []T{d}
			default:
				return nil, fmt.Errorf("gop: %s: input %d has element type %v", what, i, x.Dtype())
			}
		case *G.F32:
			d, ok := any([]float32{float32(*x)}).([]T)
			if !ok {
				return nil, fmt.Errorf("gop: %s: input %d is float32, op is float64", what, i)
			}
			out[i].Shape, out[i].Data = tensor.ScalarShape(), d
		case *G.F64:
			d, ok := any([]float64{float64(*x)}).([]T)
			if !ok {
				return nil, fmt.Errorf("gop: %s: input %d is float64, op is float32", what, i)
			}
			out[i].Shape, out[i].Data = tensor.ScalarShape(), d
		default:
			return nil, fmt.Errorf("gop: %s: input %d has unsupported value type %T", what, i, v)
		}
	}
	return out, nil
}

// newValue allocates a value of the given shape and returns it with its data.
func newValue[T kernels.Float](s tensor.Shape) (G.Value, []T) {
	if s.IsScalar() {
		data := make([]T, 1)
		return nil, data
	}
	data := make([]T, s.TotalSize())
	return tensor.New(tensor.WithShape(s.Clone()...), tensor.WithBacking(data)), data
}

// outputCache holds a node's output tensor between runs.
type outputCache[T kernels.Float] struct {
	v    G.Value
	data []T
}

// get returns the cached output of shape s, allocating it on first use (a
// scalar output is returned as a nil value with a fresh one-element slice).
func (c *outputCache[T]) get(s tensor.Shape) (G.Value, []T) {
	if s.IsScalar() {
		return newValue[T](s)
	}
	if c.v == nil {
		c.v, c.data = newValue[T](s)
	}
	return c.v, c.data
}

// scalarValue wraps a one-element result as a gorgonia scalar.
func scalarValue[T kernels.Float](x T) G.Value {
	switch v := any(x).(type) {
	case float32:
		return G.NewF32(v)
	default:
		return G.NewF64(any(x).(float64))
	}
}

// fwdOp is the forward node of a kernel. Each node has its own op value, so
// the op keeps its output tensor and overwrites it on the next run: a node's
// value is valid until the graph runs again (or, under a Plan, until another
// node writes its shared buffer), and a training step allocates nothing once
// warm.
type fwdOp[T kernels.Float] struct {
	k        Kernel[T]
	inTypes  []hm.Type
	outShape tensor.Shape
	out      outputCache[T]
	plan     *Plan // nil unless NewPlan planned this node
	seq      int   // its place in the plan's execution order
	// inputs holds the input values of the last run of a node the plan
	// checkpoints (see recompute); nil for other nodes.
	inputs []G.Value
	keep   bool
}

func (op *fwdOp[T]) Arity() int { return len(op.inTypes) }

func (op *fwdOp[T]) Type() hm.Type {
	ts := append(append([]hm.Type(nil), op.inTypes...), typeOf[T](op.outShape))
	return hm.NewFnType(ts...)
}

func (op *fwdOp[T]) InferShape(in ...G.DimSizer) (tensor.Shape, error) {
	return op.outShape.Clone(), nil
}

func (op *fwdOp[T]) Do(vals ...G.Value) (G.Value, error) {
	if err := op.plan.enter(op.seq, op.k.Name()); err != nil {
		return nil, err
	}
	in, err := args[T](op.k.Name(), vals)
	if err != nil {
		return nil, err
	}
	if op.keep {
		op.inputs = append(op.inputs[:0], vals...)
	}
	v, out := op.out.get(op.outShape)
	op.k.Forward(out, in)
	if v == nil {
		return scalarValue(out[0]), nil
	}
	return v, nil
}

// recompute runs the kernel again on the inputs of its last forward run,
// into its own buffer (a checkpointed node's value is not a scalar).
func (op *fwdOp[T]) recompute() error {
	if op.inputs == nil {
		return fmt.Errorf("gop: %s is recomputed before it has run", op.k.Name())
	}
	in, err := args[T](op.k.Name(), op.inputs)
	if err != nil {
		return err
	}
	op.k.Forward(op.out.data, in)
	return nil
}

func (op *fwdOp[T]) ReturnsPtr() bool      { return false }
func (op *fwdOp[T]) CallsExtern() bool     { return false }
func (op *fwdOp[T]) OverwritesInput() int  { return -1 }
func (op *fwdOp[T]) WriteHash(h hash.Hash) { hashName(h, "fwd", op.k.Name()) }
func (op *fwdOp[T]) Hashcode() uint32      { return hash32("fwd", op.k.Name()) }
func (op *fwdOp[T]) String() string        { return op.k.Name() }
func (op *fwdOp[T]) DiffWRT(n int) []bool {
	d := make([]bool, n)
	for i := range d {
		d[i] = op.k.Differentiable(i)
	}
	return d
}

// SymDiff gives every differentiable input its own backward node reading the
// inputs its Backward reads (see BackwardReader) and the output's gradient.
func (op *fwdOp[T]) SymDiff(inputs G.Nodes, output, grad *G.Node) (G.Nodes, error) {
	grads := make(G.Nodes, len(inputs))
	shapes := make([]tensor.Shape, len(inputs))
	for i, n := range inputs {
		shapes[i] = n.Shape().Clone()
	}
	for i := range inputs {
		if !op.k.Differentiable(i) {
			continue
		}
		b := &bwdOp[T]{k: op.k, wrt: i, inShapes: shapes, outShape: shapes[i]}
		var bwdIn G.Nodes
		for j, in := range inputs {
			if backwardReads(op.k, i, j) {
				b.reads = append(b.reads, j)
				bwdIn = append(bwdIn, in)
			}
		}
		bwdIn = append(bwdIn, grad)
		for _, n := range bwdIn {
			b.inTypes = append(b.inTypes, n.Type())
		}
		g, err := G.ApplyOp(b, bwdIn...)
		if err != nil {
			return nil, fmt.Errorf("gop: %s: gradient of input %d: %w", op.k.Name(), i, err)
		}
		grads[i] = g
	}
	return grads, nil
}

// bwdOp computes one input's gradient of a kernel. Its inputs are the forward
// inputs that the kernel's Backward reads followed by the output's gradient.
// Like fwdOp it reuses its output tensor from run to run.
type bwdOp[T kernels.Float] struct {
	k        Kernel[T]
	wrt      int
	inShapes []tensor.Shape // of every forward input
	reads    []int          // the forward inputs that are node inputs, in order
	inTypes  []hm.Type
	outShape tensor.Shape
	out      outputCache[T]
	plan     *Plan
	seq      int
}

func (op *bwdOp[T]) name() string { return fmt.Sprintf("%s/d%d", op.k.Name(), op.wrt) }

func (op *bwdOp[T]) Arity() int { return len(op.inTypes) }

func (op *bwdOp[T]) Type() hm.Type {
	ts := append(append([]hm.Type(nil), op.inTypes...), typeOf[T](op.outShape))
	return hm.NewFnType(ts...)
}

func (op *bwdOp[T]) InferShape(in ...G.DimSizer) (tensor.Shape, error) {
	return op.outShape.Clone(), nil
}

func (op *bwdOp[T]) run(dIn []T, vals []G.Value) error {
	all, err := args[T](op.name(), vals)
	if err != nil {
		return err
	}
	in := make([]Arg[T], len(op.inShapes))
	for i, s := range op.inShapes {
		in[i].Shape = s
	}
	for j, i := range op.reads {
		in[i] = all[j]
	}
	op.k.Backward(op.wrt, dIn, all[len(all)-1].Data, in)
	return nil
}

func (op *bwdOp[T]) Do(vals ...G.Value) (G.Value, error) {
	if err := op.plan.enter(op.seq, op.name()); err != nil {
		return nil, err
	}
	v, dIn := op.out.get(op.outShape)
	if err := op.run(dIn, vals); err != nil {
		return nil, err
	}
	if v == nil {
		return scalarValue(dIn[0]), nil
	}
	return v, nil
}

func (op *bwdOp[T]) ReturnsPtr() bool      { return false }
func (op *bwdOp[T]) CallsExtern() bool     { return false }
func (op *bwdOp[T]) OverwritesInput() int  { return -1 }
func (op *bwdOp[T]) WriteHash(h hash.Hash) { hashName(h, "bwd", op.name()) }
func (op *bwdOp[T]) Hashcode() uint32      { return hash32("bwd", op.name()) }
func (op *bwdOp[T]) String() string        { return op.name() }
