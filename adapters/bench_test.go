package adapters

import (
	"fmt"
	"testing"

	"github.com/salr-go/salr/kernels"
	"github.com/salr-go/salr/kernels/gop"
)

// BenchmarkFusedAdapter times one projection's adapters at bench-60M shapes
// (N = 4×256 tokens, LoRA rank 16 + SVD rank 16): the fused op (two GEMMs
// forward) against the same two adapters applied separately (two GEMMs each),
// the fused backward (x, A_cat and B_cat), and the forward with LoRA dropout.
func BenchmarkFusedAdapter(b *testing.B) {
	const n = 4 * 256
	for _, shape := range [][2]int{{512, 512}, {1408, 512}, {512, 1408}} {
		out, in := shape[0], shape[1]
		lora, err := NewLoRA(out, in, LoRAConfig{Rank: 16, Alpha: 32}, 1)
		if err != nil {
			b.Fatal(err)
		}
		svd := &LowRank{Kind: KindSVD, Rank: 16, In: in, Out: out, Scale: 1, Trainable: true,
			A: make([]float32, 16*in), B: make([]float32, out*16)}
		f, err := Concat(lora, svd)
		if err != nil {
			b.Fatal(err)
		}
		x := make([]float32, n*in)
		for i := range x {
			x[i] = float32(i%13) * 0.01
		}
		args := kernelArgs(f, x, n, in)
		y := make([]float32, n*out)
		name := fmt.Sprintf("%dx%d", out, in)
		k := NewFusedKernel[float32](f, name, 1)
		b.Run(name+"/fused_forward", func(b *testing.B) {
			for b.Loop() {
				k.Forward(y, args)
			}
		})
		b.Run(name+"/separate_forward", func(b *testing.B) {
			parts := []*LowRank{lora, svd}
			h, part := make([]float32, n*16), make([]float32, n*out)
			for b.Loop() {
				clear(y)
				for _, p := range parts {
					d := kernels.AdapterDims{N: n, In: in, Out: out, R: p.Rank}
					scale := make([]float32, p.Rank)
					for i := range scale {
						scale[i] = p.Scale
					}
					kernels.FusedAdapterForward(d, part, h, nil, x, nil, p.A, p.B, scale)
					for i, v := range part {
						y[i] += v
					}
				}
			}
		})
		b.Run(name+"/fused_backward", func(b *testing.B) {
			grads := [][]float32{make([]float32, n*in), make([]float32, len(f.A)), make([]float32, len(f.B))}
			for b.Loop() {
				for wrt, g := range grads {
					k.Backward(wrt, g, y, args)
				}
			}
		})
		lora.Dropout = 0.05
		fd, err := Concat(lora, svd)
		if err != nil {
			b.Fatal(err)
		}
		kd := NewFusedKernel[float32](fd, name, 1)
		b.Run(name+"/fused_forward_dropout", func(b *testing.B) {
			step := uint64(0)
			for b.Loop() {
				step++
				kd.SetStep(step) // a new mask every call, as in training
				kd.Forward(y, args)
			}
		})
	}
}

var _ gop.Kernel[float32] = (*FusedKernel[float32])(nil)
