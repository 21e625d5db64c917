//go:build amd64 && !purego

package bitmap

import (
	"math/rand/v2"
	"reflect"
	"slices"
	"strings"
	"testing"

	"github.com/salr-go/salr/kernels"
)

// overriddenKernels lists the kernels of ks that are not those of base.
func overriddenKernels(ks, base *kernelSet) []string {
	var names []string
	v, b := reflect.ValueOf(ks).Elem(), reflect.ValueOf(base).Elem()
	for i := range v.NumField() {
		if f := v.Field(i); f.Kind() == reflect.Func && f.Pointer() != b.Field(i).Pointer() {
			names = append(names, v.Type().Field(i).Name)
		}
	}
	return names
}

// TestAVX512BF16Set checks how the avx512bf16 set is built on every amd64
// machine, and where the CPU has AVX512-BF16 that it is offered, tested by the
// shared suite (TestKernelSuite runs every set in kernelSets) and passes its
// self-check. Elsewhere it reports the set as skipped.
func TestAVX512BF16Set(t *testing.T) {
	for _, vbmi2 := range []bool{true, false} {
		ks := newAVX512BF16Kernels(vbmi2)
		want := []string{"denseDot", "denseDotBatch", "denseMulT", "bitmapMulT", "denseMul", "bitmapMul"}
		if vbmi2 {
			want = []string{"bitmapDot", "bitmapDotBatch", "denseDot", "denseDotBatch", "denseMulT", "bitmapMulT", "denseMul", "bitmapMul"}
		}
		if got := overriddenKernels(ks, avx512Kernels); !slices.Equal(got, want) {
			t.Errorf("vbmi2 %v: overrides %v of avx512, want %v", vbmi2, got, want)
		}
		if ks.name != "avx512bf16" || ks.fallback != avx512Kernels || !ks.denseBF16X || ks.bitmapBF16X != vbmi2 {
			t.Errorf("vbmi2 %v: name %q, fallback %v, denseBF16X %v, bitmapBF16X %v", vbmi2, ks.name, ks.fallback, ks.denseBF16X, ks.bitmapBF16X)
		}
	}
	if !hasAVX512BF16() {
		if slices.ContainsFunc(kernelSets, func(ks *kernelSet) bool { return ks.name == "avx512bf16" }) {
			t.Fatal("the avx512bf16 set is offered on a CPU without AVX512-BF16")
		}
		t.Skip("skipped: this CPU lacks AVX-512 F+BW+BF16, so the avx512bf16 kernels (denseDot, denseDotBatch, the batched denseMulT, denseMul, bitmapMulT, bitmapMul for bf16, " +
			"and with VBMI2 bitmapDot, bitmapDotBatch for bf16) are not run; where they run, the suite checks them within productBound with relX = 2⁻⁸ " +
			"(TestBF16GemmDrivers runs the batched products' drivers with Go stand-ins for the assembly)")
	}
	if !slices.Contains(kernelSets, avx512BF16Kernels) || kernelSets[len(kernelSets)-1] != avx512BF16Kernels {
		t.Fatal("the CPU has AVX512-BF16 but avx512bf16 is not the last (preferred) set in kernelSets")
	}
	t.Logf("avx512bf16 overrides %v of avx512", overriddenKernels(avx512BF16Kernels, avx512Kernels))
	if err := selfCheck(avx512BF16Kernels, avx512Kernels); err != nil {
		t.Fatalf("self-check: %v", err)
	}
}

// goGemm is bf16Gemm with pure-Go stand-ins for the assembly that keep its
// contracts (they index exactly the slices the assembly may touch, so an
// access outside them panics): it runs the drivers on any CPU. The assembly
// itself runs in the suite where the CPU has AVX512-BF16, and elsewhere in
// testdata/emulate/emulate_avx512bf16.py.
var goGemm = &bf16Gemm{tile: gemmBF16TileGo, round: roundBF16Go, decode: decodeBitmapBF16WordsGo, pairs: packPairsGo}

func bf16Value(h uint16) float32 { return kernels.BF16ToFloat32(h) }

// gemmBF16TileGo is gemmBF16Tile in Go.
func gemmBF16TileGo(c []float32, xp []uint32, w []uint16, ldw, kpairs int) {
	c, xp, w = c[:gemmN*gemmM], xp[:kpairs*gemmM], w[:(gemmN-1)*ldw+2*kpairs]
	for j := range gemmN {
		for i := range gemmM {
			var s float32
			for k := range kpairs {
				p := xp[k*gemmM+i]
				s += bf16Value(w[j*ldw+2*k])*bf16Value(uint16(p)) + bf16Value(w[j*ldw+2*k+1])*bf16Value(uint16(p>>16))
			}
			c[j*gemmM+i] = s
		}
	}
}

// packPairsGo is packPairs in Go.
func packPairsGo(dst []uint32, lo, hi []uint16, cols, stride int) {
	blocks := (cols + gemmM - 1) / gemmM
	dst, lo, hi = dst[:(blocks-1)*stride+gemmM], lo[:cols], hi[:cols]
	for b := range blocks {
		for i := range gemmM {
			var v uint32
			if c := b*gemmM + i; c < cols {
				v = uint32(lo[c]) | uint32(hi[c])<<16
			}
			dst[b*stride+i] = v
		}
	}
}

// roundBF16Go is packBF16 in Go.
func roundBF16Go(dst []uint16, src []float32) {
	dst = dst[:(len(src)+31)/32*32]
	clear(dst)
	for i, v := range src {
		dst[i] = kernels.Float32ToBF16(v)
	}
}

// decodeBitmapBF16WordsGo is bf16Gemm.decode in Go.
func decodeBitmapBF16WordsGo(m *Matrix, dst []uint16, ldd, r0, r1 int) {
	width := gemmKPairs(m.cols, true) * 2
	dst = dst[:(r1-r0-1)*ldd+width]
	row := make([]float32, m.cols)
	for r := r0; r < r1; r++ {
		m.decodeRowsGo(row, r, r+1)
		roundBF16Go(dst[(r-r0)*ldd:(r-r0)*ldd+width], row)
	}
}

// goGemmKernels is the go set with goGemm as its batched product, so that
// MulT dispatches to the bf16 GEMM's drivers on this CPU.
func goGemmKernels() *kernelSet {
	ks := *goKernels
	ks.name = "go+bf16gemm"
	goGemm.install(&ks)
	return &ks
}

// TestBF16GemmDrivers runs MulT and Mul through the batched bf16 products' drivers
// (with goGemm's stand-ins for the assembly) on shapes with partial blocks
// of W (rows not a multiple of gemmN) and of x (n not a multiple of gemmM),
// odd and partial-group column counts, partial groups of blocks of W (130
// rows), more than one span of gemmKC column pairs (and for Mul, of panels of
// 2·gemmKC rows of W: 2105 rows), against the float64 reference within
// productBound with x rounded to bf16; fp16 and fp32 bitmaps must keep the
// panel pipeline.
func TestBF16GemmDrivers(t *testing.T) {
	ks := goGemmKernels()
	rng := rand.New(rand.NewPCG(21, 22))
	for _, shape := range [][2]int{{1, 1}, {12, 2}, {13, 7}, {11, 32}, {25, 33}, {24, 64}, {37, 100}, {30, 257}, {130, 40}, {25, 2*gemmKC + 57}, {2*gemmKC + 57, 45}} {
		rows, cols := shape[0], shape[1]
		w := randomSparse(rng, rows, cols, 0.5)
		for _, tm := range formatsUnder(t, ks, w, rows, cols) {
			if tm.batched != (tm.name == "bitmap-bf16" || tm.name == "dense-bf16") {
				t.Fatalf("%s: batched = %v", tm.name, tm.batched)
			}
			for _, n := range []int{maxBatch + 1, gemmM, gemmM + 1, 3*gemmM - 5} {
				for _, check := range []func(*testing.T, *rand.Rand, testMatrix, int){checkMulT, checkMul} {
					before := pipelinePanels[0].Load() + pipelinePanels[1].Load()
					check(t, rng, tm, n)
					piped := pipelinePanels[0].Load()+pipelinePanels[1].Load() > before
					if piped == tm.batched {
						t.Fatalf("%s %dx%d n=%d: through the panel pipeline %v, batched %v", tm.name, rows, cols, n, piped, tm.batched)
					}
				}
			}
		}
	}
	// BF16Batches = false keeps every format on the panel pipeline.
	func() {
		defer func(b bool) { BF16Batches = b }(BF16Batches)
		BF16Batches = false
		w := randomSparse(rng, 30, 40, 0.5)
		for _, tm := range formatsUnder(t, ks, w, 30, 40) {
			tm.batched = false
			for _, check := range []func(*testing.T, *rand.Rand, testMatrix, int){checkMulT, checkMul} {
				before := pipelinePanels[0].Load() + pipelinePanels[1].Load()
				check(t, rng, tm, 2*maxBatch)
				if pipelinePanels[0].Load()+pipelinePanels[1].Load() == before {
					t.Fatalf("%s with BF16Batches = false: not through the panel pipeline", tm.name)
				}
			}
		}
	}()

	// The self-check covers the batched product: it passes with the right
	// drivers and catches a tile that drops the first column pair.
	if err := selfCheck(ks, goKernels); err != nil {
		t.Fatalf("self-check: %v", err)
	}
	bad := *goGemm
	bad.tile = func(c []float32, xp []uint32, w []uint16, ldw, kpairs int) {
		gemmBF16TileGo(c, xp[gemmM:], w[2:], ldw, kpairs-1)
	}
	broken := *goKernels
	bad.install(&broken)
	err := selfCheck(&broken, goKernels)
	if err == nil || !strings.HasPrefix(err.Error(), "bitmapMulT on bitmap-bf16") {
		t.Fatalf("self-check of a tile that drops the first column pair: %v, want a bitmapMulT error", err)
	}
	t.Logf("a broken tile fails the self-check: %v", err)
}
