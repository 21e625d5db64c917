package gop

import (
	"math/rand/v2"
	"testing"

	"github.com/salr-go/salr/kernels"
	"gorgonia.org/tensor"
)

func randArg(rng *rand.Rand, shape ...int) Arg[float64] {
	s := tensor.Shape(shape)
	data := make([]float64, s.TotalSize())
	for i := range data {
		data[i] = rng.NormFloat64()
	}
	return Arg[float64]{Shape: s, Data: data}
}

func intArg(rng *rand.Rand, n, max int) Arg[float64] {
	ids := make([]int, n)
	for i := range ids {
		ids[i] = rng.IntN(max)
	}
	return Arg[float64]{Shape: tensor.Shape{n}, Ints: ids}
}

// TestLayerKernelsGradients runs the numeric gradient check on every layer
// op as the graph uses it (through the Kernel interface, in float64).
func TestLayerKernelsGradients(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 1))
	const n, c, v = 6, 8, 11
	mask := randArg(rng, n)
	for i := range mask.Data {
		mask.Data[i] = float64(rng.IntN(2))
	}
	mask.Data[0] = 1
	frozenW := randArg(rng, 5, c)
	attn := kernels.SelfAttention{Batch: 2, Seq: 3, Heads: 4, KVHeads: 2, HeadDim: 4,
		InvFreq: kernels.RopeInvFreq(4, 10000, kernels.RopeScaling{})}
	packed := attn
	packed.Positions = []int{0, 1, 0, 0, 0, 1} // examples of 2 and 1 rows, then 1 and 2
	cases := []struct {
		name string
		k    Kernel[float64]
		in   []Arg[float64]
	}{
		{"Embedding", Embedding[float64]{}, []Arg[float64]{intArg(rng, n, v), randArg(rng, v, c)}},
		{"RMSNorm", RMSNorm[float64]{Eps: 1e-5}, []Arg[float64]{randArg(rng, n, c), randArg(rng, c)}},
		{"FrozenLinear", FrozenLinear[float64]{ID: "w", W: kernels.NewDense(frozenW.Data, 5, c), Bias: randArg(rng, 5).Data},
			[]Arg[float64]{randArg(rng, n, c)}},
		{"Linear", Linear[float64]{}, []Arg[float64]{randArg(rng, n, c), randArg(rng, 5, c)}},
		{"LinearBias", Linear[float64]{}, []Arg[float64]{randArg(rng, n, c), randArg(rng, 5, c), randArg(rng, 5)}},
		{"SelfAttention", SelfAttention[float64]{SelfAttention: attn}, []Arg[float64]{randArg(rng, 6, (4+2*2)*4)}},
		{"SwiGLU", SwiGLU[float64]{}, []Arg[float64]{randArg(rng, n, c), randArg(rng, n, c)}},
		{"Add", Add[float64]{}, []Arg[float64]{randArg(rng, n, c), randArg(rng, n, c)}},
		{"ConcatColumns", ConcatColumns[float64]{}, []Arg[float64]{randArg(rng, n, 3), randArg(rng, n, 2), randArg(rng, n, 4)}},
		{"CrossEntropy", CrossEntropy[float64]{}, []Arg[float64]{randArg(rng, n, v), intArg(rng, n, v), mask}},
		{"SelfAttentionPacked", SelfAttention[float64]{SelfAttention: packed}, []Arg[float64]{randArg(rng, 6, (4+2*2)*4)}},
		{"Weighted", Weighted[float64]{}, []Arg[float64]{randArg(rng, n, c), randArg(rng, 1)}},
	}
	for _, tc := range cases {
		if err := CheckGradients(tc.k, tc.in, 7, 1e-6); err != nil {
			t.Errorf("%s: %v", tc.name, err)
		}
	}
}

func TestLayerKernelsRejectBadShapes(t *testing.T) {
	bad := []struct {
		k  Kernel[float32]
		in []tensor.Shape
	}{
		{RMSNorm[float32]{Eps: 1e-5}, []tensor.Shape{{4, 8}, {7}}},
		{Embedding[float32]{}, []tensor.Shape{{4, 1}, {10, 8}}},
		{FrozenLinear[float32]{ID: "w", W: kernels.NewDense(make([]float32, 40), 5, 8)}, []tensor.Shape{{4, 7}}},
		{Linear[float32]{}, []tensor.Shape{{4, 8}, {5, 7}}},
		{SwiGLU[float32]{}, []tensor.Shape{{4, 8}, {4, 9}}},
		{Add[float32]{}, []tensor.Shape{{4, 8}, {4, 9}}},
		{ConcatColumns[float32]{}, []tensor.Shape{{4, 8}, {5, 9}}},
		{Weighted[float32]{}, []tensor.Shape{{4, 8}, {2}}},
		{CrossEntropy[float32]{}, []tensor.Shape{{4, 8}, {3}, {4}}},
		{SelfAttention[float32]{SelfAttention: kernels.SelfAttention{Batch: 1, Seq: 4, Heads: 2, KVHeads: 1, HeadDim: 2}}, []tensor.Shape{{4, 9}}},
	}
	for _, b := range bad {
		if _, err := b.k.OutShape(b.in); err == nil {
			t.Errorf("%s accepted shapes %v", b.k.Name(), b.in)
		}
	}
}
