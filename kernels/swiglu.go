package kernels

// SwiGLUForward computes out = silu(gate) ⊙ up element-wise, where
// silu(z) = z·σ(z); gate, up and out have equal lengths (N·I for the MLP's
// intermediate width I). out is overwritten and may alias gate or up.
func SwiGLUForward[T Float](out, gate, up []T) {
	n := len(gate)
	checkLen("SwiGLUForward up", up, n)
	checkLen("SwiGLUForward out", out, n)
	parallelFor(n, n*expCost, func(lo, hi int) {
		var sig [swigluChunk]T
		for c0 := lo; c0 < hi; c0 += swigluChunk {
			c1 := min(c0+swigluChunk, hi)
			sigmoidInto(sig[:], gate[c0:c1])
			for i := c0; i < c1; i++ {
				out[i] = gate[i] * sig[i-c0] * up[i]
			}
		}
	})
}

// SwiGLUBackward computes the gradients of SwiGLUForward for the upstream
// gradient dout, with s = σ(gate):
//
//	dgate = dout ⊙ up ⊙ s ⊙ (1 + gate ⊙ (1 - s)),  dup = dout ⊙ gate ⊙ s
//
// dgate and dup are overwritten; either may be nil to skip it. They may alias
// dout.
func SwiGLUBackward[T Float](dgate, dup, dout, gate, up []T) {
	n := len(gate)
	checkLen("SwiGLUBackward up", up, n)
	checkLen("SwiGLUBackward dout", dout, n)
	if dgate != nil {
		checkLen("SwiGLUBackward dgate", dgate, n)
	}
	if dup != nil {
		checkLen("SwiGLUBackward dup", dup, n)
	}
	if dgate == nil && dup == nil {
		return
	}
	parallelFor(n, n*expCost, func(lo, hi int) {
		var sig [swigluChunk]T
		for c0 := lo; c0 < hi; c0 += swigluChunk {
			c1 := min(c0+swigluChunk, hi)
			sigmoidInto(sig[:], gate[c0:c1])
			for i := c0; i < c1; i++ {
				s, g, d := sig[i-c0], gate[i], dout[i]
				if dgate != nil {
					dgate[i] = d * up[i] * s * (1 + g*(1-s))
				}
				if dup != nil {
					dup[i] = d * g * s
				}
			}
		}
	})
}

// swigluChunk is the number of sigmoids computed at once into a stack buffer,
// which lets the outputs alias the inputs.
const swigluChunk = 256
