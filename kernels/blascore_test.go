package kernels

import "testing"

func TestBetterCore(t *testing.T) {
	var (
		none    = CPUFeatures{}
		avx2    = CPUFeatures{AVX2: true, FMA: true}
		avx512  = CPUFeatures{AVX2: true, FMA: true, AVX512F: true, AVX512BW: true, AVX512VL: true}
		bf16    = CPUFeatures{AVX2: true, FMA: true, AVX512F: true, AVX512BW: true, AVX512VL: true, AVX512BF16: true}
		avx512f = CPUFeatures{AVX2: true, FMA: true, AVX512F: true} // no BW/VL (Knights Landing)
	)
	for _, c := range []struct {
		core string
		f    CPUFeatures
		want string // "" for no correction
	}{
		{"Prescott", bf16, "Cooperlake"}, // Xeon family 6 model 207 on OpenBLAS 0.3.21
		{"Prescott", avx512, "SkylakeX"},
		{"Prescott", avx2, "Haswell"},
		{"Prescott", avx512f, "Haswell"},
		{"Prescott", none, ""},
		{"Core2", avx2, "Haswell"},
		{"Nehalem", avx2, "Haswell"},
		{"Sandybridge", avx2, "Haswell"},
		{"SANDYBRIDGE", avx2, "Haswell"},
		{"Sandybridge", CPUFeatures{AVX2: true}, ""}, // AVX2 without FMA
		{"Haswell", avx2, ""},
		{"Haswell", avx512, "SkylakeX"},
		{"Haswell", bf16, "Cooperlake"},
		{"SkylakeX", avx512, ""},
		{"SkylakeX", bf16, "Cooperlake"},
		{"Cooperlake", bf16, ""},
		{"Cooperlake", avx2, ""}, // never downgraded
		{"SapphireRapids", bf16, ""},
		{"Zen", avx2, ""}, // OpenBLAS's own choice on AMD
		{"Zen", bf16, ""},
		{"neoversen1", avx2, ""}, // unknown: kept
		{"purego", bf16, ""},
	} {
		got, ok := BetterCore(c.core, c.f)
		if got != c.want || ok != (c.want != "") {
			t.Errorf("BetterCore(%q, %+v) = %q, %v; want %q", c.core, c.f, got, ok, c.want)
		}
	}
}

func TestBLASCoreCorrectionUserWins(t *testing.T) {
	t.Setenv(CoreFixedEnv, "")
	t.Setenv(TestForceCoreEnv, "")
	t.Setenv(CoreTypeEnv, "Prescott")
	if got, ok := BLASCoreCorrection(); ok {
		t.Errorf("with the user's OPENBLAS_CORETYPE: correction to %q, want none", got)
	}
}
