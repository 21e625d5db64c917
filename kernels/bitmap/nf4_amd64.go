//go:build amd64 && !purego

package bitmap

// dequantNF4AVX2 decodes groups of 32 NF4 values (nf4_avx2_amd64.s): dst
// gets 32*groups bf16 values from the 16*groups bytes at codes, group i
// scaled by scales[(phase+i)/2], indices looked up in tab.
//
//go:noescape
func dequantNF4AVX2(dst *uint16, codes *uint8, scales *float32, tab *[16]float32, groups, phase int)

// avx2NF4Dequant is the kernel sets' nf4Dequant on AVX2 CPUs: the values
// [k0, k1) into dst, sc holding the scales from block k0/64 on. The values
// before the first multiple of 32 and after the last whole group go through
// dequantGo.
func avx2NF4Dequant(dst []uint16, codes []uint8, sc []float32, k0, k1 int) {
	b0 := k0 / NF4BlockSize
	h := min(k1, (k0+31)/32*32)
	dequantGo(dst, codes, sc, k0, h)
	groups := (k1 - h) / 32
	if groups > 0 {
		_ = dst[h-k0+32*groups-1]
		_ = codes[h/2+16*groups-1]
		_ = sc[(h+32*groups-1)/NF4BlockSize-b0]
		dequantNF4AVX2(&dst[h-k0], &codes[h/2], &sc[h/NF4BlockSize-b0], &NF4Code, groups, h/32%2)
	}
	t := h + 32*groups
	if t < k1 {
		dequantGo(dst[t-k0:], codes, sc[t/NF4BlockSize-b0:], t, k1)
	}
}

// The NF4 decoder of every set that runs on an AVX2 CPU.
func init() {
	if !hasAVX2() {
		return
	}
	for _, p := range kernelPaths {
		if p.set != goKernels {
			p.set.nf4Dequant = avx2NF4Dequant
		}
	}
	// The fused dense-nf4 GEMV on the avx2 set (the AVX-512 sets keep the decode path
	// and their own bf16 kernels: not measured on an AVX-512 CPU yet).
	avx2Kernels.nf4Dot = avx2NF4Dot
}
