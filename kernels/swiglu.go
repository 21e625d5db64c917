package kernels

// SwiGLUForward computes out = silu(gate) ⊙ up element-wise, where
// silu(z) = z·σ(z); gate, up and out have equal lengths (N·I for the MLP's
// intermediate width I). out is overwritten and may alias gate or up.
func SwiGLUForward[T Float](out, gate, up []T) {
	n := len(gate)
	checkLen("SwiGLUForward up", up, n)
	checkLen("SwiGLUForward out", out, n)
	forSigmoidChunks(gate, func(c0 int, sig []T) {
		g, u, o := gate[c0:c0+len(sig)], up[c0:c0+len(sig)], out[c0:c0+len(sig)]
		for i, s := range sig {
			o[i] = g[i] * s * u[i]
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
	forSigmoidChunks(gate, func(c0 int, sig []T) {
		c1 := c0 + len(sig)
		g, u, d := gate[c0:c1], up[c0:c1], dout[c0:c1]
		switch {
		case dup == nil:
			dg := dgate[c0:c1]
			for i, s := range sig {
				dg[i] = d[i] * u[i] * s * (1 + g[i]*(1-s))
			}
		case dgate == nil:
			du := dup[c0:c1]
			for i, s := range sig {
				du[i] = d[i] * g[i] * s
			}
		default: // one loop, so that either output may alias dout
			dg, du := dgate[c0:c1], dup[c0:c1]
			for i, s := range sig {
				gi, di := g[i], d[i]
				dg[i] = di * u[i] * s * (1 + gi*(1-s))
				du[i] = di * gi * s
			}
		}
	})
}

// forSigmoidChunks calls fn(c0, σ(gate[c0:c0+len(sig)])) for consecutive
// chunks of gate, in parallel goroutines. The sigmoids live in a stack buffer,
// so fn may overwrite gate.
func forSigmoidChunks[T Float](gate []T, fn func(c0 int, sig []T)) {
	parallelFor(len(gate), len(gate)*expCost, func(lo, hi int) {
		var buf [swigluChunk]T
		for c0 := lo; c0 < hi; c0 += swigluChunk {
			sig := buf[:min(swigluChunk, hi-c0)]
			sigmoidInto(sig, gate[c0:c0+len(sig)])
			fn(c0, sig)
		}
	})
}

// swigluChunk is the number of sigmoids computed at once into a stack buffer,
// which lets the outputs alias the inputs.
const swigluChunk = 256
