package adapters

import (
	"math"
	"slices"
	"strings"
	"testing"
)

func TestConcatLayoutAndRoundTrip(t *testing.T) {
	const out, in = 4, 5
	lora, svd := testAdapters(t, out, in, 0.1, false)
	f := mustConcat(t, lora, svd)
	if f.Rank != 5 || f.Dropped() != 3 || f.Dropout() != 0.1 {
		t.Fatalf("rank %d dropped %d dropout %g", f.Rank, f.Dropped(), f.Dropout())
	}
	if want := []float32{2, 2, 2, 1, 1}; !slices.Equal(f.Scale, want) {
		t.Fatalf("scale %v, want %v", f.Scale, want)
	}
	// A_cat rows: LoRA then SVD; B_cat columns likewise.
	if !slices.Equal(f.A[:3*in], lora.A) || !slices.Equal(f.A[3*in:], svd.A) {
		t.Fatal("A_cat is not [A_lora; A_svd]")
	}
	for o := 0; o < out; o++ {
		if !slices.Equal(f.B[o*5:o*5+3], lora.B[o*3:o*3+3]) || !slices.Equal(f.B[o*5+3:o*5+5], svd.B[o*2:o*2+2]) {
			t.Fatalf("B_cat row %d is not [B_lora, B_svd]", o)
		}
	}
	for i, orig := range []*LowRank{lora, svd} {
		back := f.Adapter(i)
		if !slices.Equal(back.A, orig.A) || !slices.Equal(back.B, orig.B) || back.Scale != orig.Scale ||
			back.Kind != orig.Kind || back.Trainable != orig.Trainable || back.Dropout != orig.Dropout {
			t.Fatalf("Adapter(%d) differs from the original", i)
		}
	}
}

func TestConcatErrors(t *testing.T) {
	lora, svd := testAdapters(t, 4, 5, 0.1, true)
	other, _ := testAdapters(t, 4, 6, 0, true)
	lora2, _ := testAdapters(t, 4, 5, 0.2, true)
	cases := []struct {
		parts []*LowRank
		want  string
	}{
		{nil, "no adapters"},
		{[]*LowRank{lora, other}, "4×6"},
		{[]*LowRank{svd, lora}, "put adapters with dropout first"},
		{[]*LowRank{lora, lora2}, "dropouts 0.1 (lora) and 0.2 (lora) differ"},
		{[]*LowRank{{Kind: "bad", Rank: 1, In: 2, Out: 2, A: []float32{1}}}, "A has 1 values"},
	}
	for _, c := range cases {
		if _, err := Concat(c.parts...); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("Concat: error %v, want %q", err, c.want)
		}
	}
}

func TestMergeEqualsBasePlusScaledProducts(t *testing.T) {
	const out, in = 6, 7
	lora, svd := testAdapters(t, out, in, 0, true)
	f := mustConcat(t, lora, svd)
	base := make([]float32, out*in)
	for i := range base {
		base[i] = float32(i%5) - 2
	}
	want := make([]float64, out*in)
	for o := 0; o < out; o++ {
		for i := 0; i < in; i++ {
			v := float64(base[o*in+i])
			for _, p := range []*LowRank{lora, svd} {
				for r := 0; r < p.Rank; r++ {
					v += float64(p.Scale) * float64(p.B[o*p.Rank+r]) * float64(p.A[r*in+i])
				}
			}
			want[o*in+i] = v
		}
	}
	merged := slices.Clone(base)
	f.MergeInto(merged)
	separate := slices.Clone(base)
	lora.MergeInto(separate)
	svd.MergeInto(separate)
	// ScaledB is the PEFT export's lora_B: ScaledB·A_cat is the same update.
	exported := slices.Clone(base)
	(&LowRank{Kind: "peft", Rank: f.Rank, In: in, Out: out, A: f.A, B: f.ScaledB(), Scale: 1}).MergeInto(exported)
	unmerged := slices.Clone(merged)
	f.UnmergeFrom(unmerged)
	for i := range want {
		if math.Abs(float64(unmerged[i]-base[i])) > 1e-5 {
			t.Fatalf("unmerge [%d] = %g, want the base %g", i, unmerged[i], base[i])
		}
		for name, got := range map[string][]float32{"fused": merged, "separate": separate, "exported": exported} {
			if math.Abs(float64(got[i])-want[i]) > 1e-5 {
				t.Fatalf("%s merge [%d] = %g, want %g", name, i, got[i], want[i])
			}
		}
	}
}
