package bitmap

import (
	"math"
	"math/rand/v2"
	"strings"
	"testing"

	"github.com/salr-go/salr/kernels"
)

// roundTo is what Encode promises for one nonzero value: rounding to dt, with
// values that would round to ±0 kept as the smallest subnormal of their sign.
func roundTo(v float32, dt DType) float32 {
	switch dt {
	case BF16:
		h := kernels.Float32ToBF16(v)
		if h&0x7fff == 0 {
			h |= 1
		}
		return kernels.BF16ToFloat32(h)
	case F16:
		h := kernels.Float32ToF16(v)
		if h&0x7fff == 0 {
			h |= 1
		}
		return kernels.F16ToFloat32(h)
	}
	return v
}

// TestEncodeDecodeIdentity is the property test: on random shapes and
// sparsities (0%, 100% and random), decoding gives back exactly the encoded
// values, zeros exactly at the zeros of w, and Parts/FromParts round-trips.
func TestEncodeDecodeIdentity(t *testing.T) {
	rng := rand.New(rand.NewPCG(7, 8))
	for iter := 0; iter < 200; iter++ {
		rows, cols := 1+rng.IntN(20), 1+rng.IntN(80)
		sp := []float64{0, 1, rng.Float64()}[iter%3]
		w := randomSparse(rng, rows, cols, sp)
		// Sprinkle values that stress the rounding rule and special values.
		for i := range w {
			if w[i] != 0 && rng.IntN(8) == 0 {
				w[i] = []float32{1e-45, -1e-45, 1e-39, -3e-8, 1e-8, 7e4, -1e5, float32(math.Inf(1)), float32(math.NaN())}[rng.IntN(9)]
			}
		}
		for _, dt := range []DType{BF16, F16, F32} {
			m, err := Encode(w, rows, cols, dt)
			if err != nil {
				t.Fatal(err)
			}
			m2, err := FromParts(m.Parts())
			if err != nil {
				t.Fatalf("FromParts of Encode's parts: %v", err)
			}
			for _, mat := range []*Matrix{m, m2} {
				for _, ks := range kernelSets {
					mat.kern = ks
					dst := make([]float32, rows*cols)
					mat.Decode(dst)
					for i, v := range w {
						want := float32(0)
						if v != 0 {
							want = roundTo(v, dt)
						}
						got := dst[i]
						same := math.Float32bits(got) == math.Float32bits(want) ||
							(math.IsNaN(float64(got)) && math.IsNaN(float64(want)))
						if !same || (v != 0) != (got != 0 || math.IsNaN(float64(got))) {
							t.Fatalf("%s %s %dx%d: element %d: encoded %v, decoded %v, want %v", ks.name, dt, rows, cols, i, v, got, want)
						}
					}
				}
			}
		}
	}
}

func TestRoundingNeverCreatesZeros(t *testing.T) {
	for dt, w := range map[DType][]float32{BF16: {1e-45, -1e-45}, F16: {1e-45, -1e-45, 1e-10, -1e-10}} {
		m, err := Encode(w, 1, len(w), dt)
		if err != nil {
			t.Fatal(err)
		}
		if m.NNZ() != len(w) {
			t.Fatalf("%s: %d nonzeros, want %d", dt, m.NNZ(), len(w))
		}
		p := m.Parts()
		for i, h := range p.Values16 {
			want := uint16(0x0001)
			if w[i] < 0 {
				want = 0x8001
			}
			if h != want {
				t.Errorf("%s: %v stored as %#04x, want the smallest subnormal %#04x", dt, w[i], h, want)
			}
		}
	}
}

func TestBytesAt50Percent(t *testing.T) {
	rows, cols := 64, 4096
	w := randomSparse(rand.New(rand.NewPCG(9, 9)), rows, cols, 0.5)
	m, err := Encode(w, rows, cols, BF16)
	if err != nil {
		t.Fatal(err)
	}
	want := int64(rows*ChunksPerRow(cols))*2 + int64(rows+1)*4 + int64(m.NNZ())*2
	if m.Bytes() != want {
		t.Fatalf("Bytes = %d, want %d", m.Bytes(), want)
	}
	if d := NewDenseBF16(w, rows, cols); d.Bytes() != int64(rows*cols*2) {
		t.Fatalf("dense Bytes = %d", d.Bytes())
	}
}

func TestEncodeErrors(t *testing.T) {
	cases := []struct {
		w          []float32
		rows, cols int
		dt         DType
		want       string
	}{
		{make([]float32, 6), 2, 3, 9, "unknown dtype"},
		{make([]float32, 5), 2, 3, BF16, "len(w) = 5"},
		{nil, 0, 3, BF16, "must be positive"},
		{nil, 3, -1, F32, "must be positive"},
	}
	for _, c := range cases {
		_, err := Encode(c.w, c.rows, c.cols, c.dt)
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("Encode(%d×%d, %v): error %v, want one containing %q", c.rows, c.cols, c.dt, err, c.want)
		}
	}
}

func TestParseDType(t *testing.T) {
	for s, want := range map[string]DType{"bf16": BF16, "FP16": F16, "f16": F16, "fp32": F32, "F32": F32} {
		if got, err := ParseDType(s); err != nil || got != want {
			t.Errorf("ParseDType(%q) = %v, %v", s, got, err)
		}
		if want.String() == "" {
			t.Errorf("empty name for %d", want)
		}
	}
	if _, err := ParseDType("int8"); err == nil {
		t.Error("ParseDType(int8) succeeded")
	}
}

// validParts is a small 3 × 20 bf16 matrix for the corruption table.
func validParts(t *testing.T) Parts {
	w := make([]float32, 3*20)
	for i := range w {
		if i%3 != 0 {
			w[i] = float32(i)
		}
	}
	m, err := Encode(w, 3, 20, BF16)
	if err != nil {
		t.Fatal(err)
	}
	p := m.Parts()
	// Deep copies, so that the corruptions below do not share storage.
	p.Bitmap = append([]uint16(nil), p.Bitmap...)
	p.RowPtr = append([]uint32(nil), p.RowPtr...)
	p.Values16 = append([]uint16(nil), p.Values16...)
	return p
}

func TestFromPartsRejectsCorruption(t *testing.T) {
	cases := []struct {
		name    string
		corrupt func(p *Parts)
		want    string
	}{
		{"unknown dtype", func(p *Parts) { p.DType = 7 }, "unknown dtype"},
		{"zero rows", func(p *Parts) { p.Rows = 0 }, "must be positive"},
		{"bitmap too short", func(p *Parts) { p.Bitmap = p.Bitmap[1:] }, "bitmap has"},
		{"row_ptr too short", func(p *Parts) { p.RowPtr = p.RowPtr[:3] }, "row_ptr has"},
		{"row_ptr[0] != 0", func(p *Parts) { p.RowPtr[0] = 1 }, "row_ptr[0]"},
		{"truncated values", func(p *Parts) { p.Values16 = p.Values16[:len(p.Values16)-1] }, "want the number of values"},
		{"row_ptr decreasing", func(p *Parts) { p.RowPtr[2] = p.RowPtr[1] - 1 }, "decreases"},
		{"popcount disagrees", func(p *Parts) { p.Bitmap[0] ^= 1 }, "bitmap has"},
		{"count moved between rows", func(p *Parts) { p.RowPtr[1]++ }, "row 0"},
		{"padding bit", func(p *Parts) { p.Bitmap[1] |= 1 << 5; p.Bitmap[1] &^= 1 << 1 }, "past column"},
		{"fp32 values on bf16", func(p *Parts) { p.Values32 = []float32{1} }, "Values32 is set"},
		{"bf16 values on fp32", func(p *Parts) { p.DType = F32 }, "Values16 is set"},
		{"shape mismatch", func(p *Parts) { p.Cols = 40 }, "bitmap has"},
	}
	for _, c := range cases {
		p := validParts(t)
		if _, err := FromParts(p); err != nil {
			t.Fatalf("valid parts rejected: %v", err)
		}
		c.corrupt(&p)
		_, err := FromParts(p)
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: error %v, want one containing %q", c.name, err, c.want)
		}
	}
}

// TestFromPartsCopiesOnlyWhenNeeded: values without spare capacity are copied
// (the kernels load whole chunks), others are used in place.
func TestFromPartsCopiesOnlyWhenNeeded(t *testing.T) {
	p := validParts(t)
	tight := p.Values16[:len(p.Values16):len(p.Values16)]
	p.Values16 = tight
	m, err := FromParts(p)
	if err != nil {
		t.Fatal(err)
	}
	if &m.vals16[0] == &tight[0] || cap(m.vals16)-len(m.vals16) < valuePad {
		t.Fatal("values without spare capacity were not copied")
	}
	roomy := append(make([]uint16, 0, len(tight)+valuePad), tight...)
	p.Values16 = roomy
	if m, err = FromParts(p); err != nil || &m.vals16[0] != &roomy[0] {
		t.Fatalf("values with spare capacity were copied (err %v)", err)
	}
}

// FuzzFromParts builds Parts from arbitrary bytes (mostly nonsense, sometimes
// a valid matrix with one field corrupted): FromParts must either reject them
// or give a Matrix on which every kernel agrees with the reference decoder,
// and nothing may panic or read out of bounds.
func FuzzFromParts(f *testing.F) {
	f.Add([]byte{3, 20, 0, 0, 0, 0, 0})
	f.Add([]byte{1, 1, 1, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0x80, 0x3f})
	f.Add([]byte{5, 33, 2, 1, 0xff, 0xff, 0x0f, 0x01, 2, 3, 4, 5, 6, 7, 8, 9})
	f.Fuzz(func(t *testing.T, data []byte) {
		if len(data) < 3 {
			return
		}
		rows, cols := 1+int(data[0]%12), 1+int(data[1]%40)
		dt := DType(data[2]%4 + 0) // 0 is an invalid dtype on purpose
		mode := data[2] / 4 % 4
		data = data[3:]
		next := func() byte {
			if len(data) == 0 {
				return 0
			}
			b := data[0]
			data = data[1:]
			return b
		}
		var p Parts
		if mode == 0 {
			// Arbitrary arrays.
			p = Parts{Rows: rows, Cols: cols, DType: dt}
			p.Bitmap = make([]uint16, rows*ChunksPerRow(cols)+int(next()%3)-1)
			for i := range p.Bitmap {
				p.Bitmap[i] = uint16(next()) | uint16(next())<<8
			}
			p.RowPtr = make([]uint32, rows+1)
			for i := 1; i < len(p.RowPtr); i++ {
				p.RowPtr[i] = p.RowPtr[i-1] + uint32(next()%24)
			}
			nv := int(p.RowPtr[rows]) + int(next()%3) - 1
			if dt == F32 {
				p.Values32 = make([]float32, max(nv, 0))
				for i := range p.Values32 {
					p.Values32[i] = math.Float32frombits(uint32(next())<<24 | uint32(next())<<16)
				}
			} else {
				p.Values16 = make([]uint16, max(nv, 0))
				for i := range p.Values16 {
					p.Values16[i] = uint16(next())<<8 | uint16(next())
				}
			}
		} else {
			// A valid matrix with one field perturbed.
			w := make([]float32, rows*cols)
			for i := range w {
				if next()&1 == 1 {
					w[i] = float32(int(next()) - 128)
				}
			}
			if dt == 0 {
				dt = BF16
			}
			m, err := Encode(w, rows, cols, dt)
			if err != nil {
				t.Fatal(err)
			}
			p = m.Parts()
			p.Bitmap = append([]uint16(nil), p.Bitmap...)
			p.RowPtr = append([]uint32(nil), p.RowPtr...)
			i := int(next())
			switch mode {
			case 1:
				p.Bitmap[i%len(p.Bitmap)] ^= 1 << (next() % 16)
			case 2:
				p.RowPtr[i%len(p.RowPtr)] += uint32(next()) - 128
			case 3:
				if dt == F32 {
					p.Values32 = p.Values32[:len(p.Values32)*int(next()%2)]
				} else {
					p.Values16 = p.Values16[:len(p.Values16)*int(next()%2)]
				}
			}
		}
		m, err := FromParts(p)
		if err != nil {
			return
		}
		ref := refDecode(p)
		rng := rand.New(rand.NewPCG(uint64(rows), uint64(cols)))
		for _, ks := range kernelSets {
			m.kern = ks
			tm := testMatrix{"fuzz-" + ks.name + "-" + p.DType.String(), m, ref, rows, cols, relXOf(ks, p.DType),
				p.DType == BF16 && ks.bitmapMulT != nil}
			if !moderate(ref) {
				// NaN/Inf weights, or weights so large that fp32 products
				// overflow, make the comparisons meaningless, but every
				// kernel must still run within bounds.
				m.Decode(make([]float32, rows*cols))
				m.MulT(make([]float32, 3*rows), make([]float32, 3*cols), 3)
				m.Mul(make([]float32, cols), make([]float32, rows), 1)
				continue
			}
			checkDecode(t, tm)
			for _, n := range []int{1, 3} {
				checkMulT(t, rng, tm, n)
				checkMul(t, rng, tm, n)
			}
		}
	})
}

// moderate reports whether every weight is finite and below 1e30, so that
// products with normal inputs cannot overflow float32.
func moderate(v []float64) bool {
	for _, x := range v {
		if !(math.Abs(x) < 1e30) {
			return false
		}
	}
	return true
}
