package datasets

import (
	"reflect"
	"strconv"
	"testing"
)

// TestMT19937Reference checks the generator core against mt19937ar.out, the
// reference output of Matsumoto and Nishimura's mt19937ar.c for
// init_by_array({0x123, 0x234, 0x345, 0x456}).
func TestMT19937Reference(t *testing.T) {
	var r pyRandom
	r.seedArray([]uint32{0x123, 0x234, 0x345, 0x456})
	want := []uint32{1067595299, 955945823, 477289528, 4107218783, 4228976476, 3344332714, 3355579695, 227628506, 810200273, 2591290167}
	for i, w := range want {
		if got := r.uint32(); got != w {
			t.Fatalf("output %d = %d, want %d", i, got, w)
		}
	}
}

// The expected values below were produced by CPython 3.11's random module.

func TestPyRandomSeeding(t *testing.T) {
	tests := []struct {
		seed uint64
		want []uint32 // random.Random(seed).getrandbits(32) x3
	}{
		{1234, []uint32{4150886329, 3342196574, 1892932127}},
		{0, []uint32{3626764237, 1654615998, 3255389356}},
		{1<<40 + 5, []uint32{2166296868, 2220160828, 1153647273}},
		{1<<64 - 1, []uint32{93740670, 1068495656, 1452108352}},
	}
	for _, tc := range tests {
		r := newPyRandom(tc.seed)
		for i, w := range tc.want {
			if got := uint32(r.getRandBits(32)); got != w {
				t.Errorf("seed %d output %d = %d, want %d", tc.seed, i, got, w)
			}
		}
	}
}

func TestPyRandomGetRandBits(t *testing.T) {
	r := newPyRandom(7)
	ks := []int{0, 1, 5, 31, 32, 33, 48, 63, 64}
	want := []uint64{0, 0, 30, 323946139, 1695753998, 2795742288, 231168335884083, 868196408185819179, 10750541312280087032}
	for i, k := range ks {
		if got := r.getRandBits(k); got != want[i] {
			t.Errorf("getrandbits(%d) = %d, want %d", k, got, want[i])
		}
	}
}

func TestPyRandomRandom(t *testing.T) {
	r := newPyRandom(7)
	want := []string{"0.32383276483316237", "0.15084917392450192", "0.6509344730398537"}
	for i, w := range want {
		if got := strconv.FormatFloat(r.random(), 'g', -1, 64); got != w {
			t.Errorf("random() %d = %s, want %s", i, got, w)
		}
	}
}

func TestPyRandomRandBelow(t *testing.T) {
	r := newPyRandom(99)
	ns := []uint64{1, 2, 3, 7, 1000, 1 << 32, 1<<32 + 1, 1<<40 + 3, 1<<63 - 1}
	want := []uint64{0, 1, 0, 4, 183, 988970880, 371851742, 844944754417, 6311633174520878514}
	for i, n := range ns {
		if got := r.randBelow(n); got != want[i] {
			t.Errorf("_randbelow(%d) = %d, want %d", n, got, want[i])
		}
	}
}

func TestPyRandomSample(t *testing.T) {
	type call struct{ n, k int }
	tests := []struct {
		name  string
		seed  uint64
		calls []call
		want  [][]int
	}{
		// n=20 <= setsize 21: pool algorithm.
		{"pool k=5", 42, []call{{20, 5}, {20, 5}, {20, 5}},
			[][]int{{3, 0, 8, 7, 16}, {4, 3, 17, 2, 13}, {1, 0, 2, 6, 7}}},
		// k=10: setsize = 21 + 4**ceil(log4(30)) = 85, so n=85 is the last
		// pool case and n=86 the first set case; they differ in the 2nd call.
		{"pool boundary n=85 k=10", 42, []call{{85, 10}, {85, 10}},
			[][]int{{81, 14, 3, 35, 31, 28, 17, 13, 69, 11}, {75, 54, 4, 3, 11, 27, 29, 64, 81, 71}}},
		{"set boundary n=86 k=10", 42, []call{{86, 10}, {86, 10}},
			[][]int{{81, 14, 3, 35, 31, 28, 17, 13, 69, 11}, {75, 54, 4, 3, 11, 27, 29, 64, 77, 71}}},
		{"k=n", 5, []call{{6, 6}, {6, 0}}, [][]int{{4, 2, 5, 3, 0, 1}, {}}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r := newPyRandom(tc.seed)
			for i, c := range tc.calls {
				got, err := r.sample(c.n, c.k)
				if err != nil {
					t.Fatal(err)
				}
				if !reflect.DeepEqual(got, tc.want[i]) {
					t.Errorf("call %d sample(range(%d), %d) = %v, want %v", i, c.n, c.k, got, tc.want[i])
				}
			}
		})
	}
	if _, err := newPyRandom(1).sample(3, 4); err == nil {
		t.Error("sampling more than the population must fail")
	}
}

// TestFewShotSamplerGSM8K checks the shots lm-eval draws for the first 20
// GSM8K test documents: random.Random(1234) and, per document in order,
// rnd.sample(train_docs, 5) over the 7,473 train problems (Python 3.11).
func TestFewShotSamplerGSM8K(t *testing.T) {
	want := [][]int{
		{6374, 3610, 957, 61, 742},
		{7462, 6610, 4769, 286, 5501},
		{5677, 687, 806, 6279, 2905},
		{1939, 142, 252, 6461, 129},
		{2835, 5311, 5105, 3966, 5044},
		{3797, 1216, 747, 1499, 5844},
		{937, 6925, 119, 4121, 3987},
		{7212, 2046, 528, 5466, 4432},
		{3816, 561, 4927, 5530, 728},
		{4219, 4743, 376, 2208, 6753},
		{4558, 516, 5280, 2477, 3940},
		{6964, 2910, 2182, 2041, 5369},
		{1638, 3714, 7180, 4343, 5451},
		{158, 4162, 578, 47, 2732},
		{1177, 5816, 3873, 5385, 3091},
		{1368, 443, 624, 4813, 4067},
		{1343, 617, 4565, 1762, 1181},
		{222, 2836, 6315, 908, 4339},
		{1156, 5492, 2501, 3720, 324},
		{3409, 2267, 5426, 6606, 329},
	}
	s := NewFewShotSampler(7473, LMEvalFewShotSeed)
	for doc, w := range want {
		got, err := s.Sample(5)
		if err != nil {
			t.Fatal(err)
		}
		if !reflect.DeepEqual(got, w) {
			t.Fatalf("document %d: shots %v, want %v", doc, got, w)
		}
	}
}

// TestFewShotSamplerExcluding checks the same-split rule: draw k+1, drop the
// evaluated document, keep k. Python: random.Random(5).sample(range(30), 7) =
// [19, 8, 23, 11, 25, 22, 27].
func TestFewShotSamplerExcluding(t *testing.T) {
	s := NewFewShotSampler(30, 5)
	got, err := s.SampleExcluding(6, func(i int) bool { return i == 23 })
	if err != nil {
		t.Fatal(err)
	}
	if want := []int{19, 8, 11, 25, 22, 27}; !reflect.DeepEqual(got, want) {
		t.Errorf("with doc 23 excluded: %v, want %v", got, want)
	}
	s = NewFewShotSampler(30, 5)
	got, err = s.SampleExcluding(6, func(int) bool { return false })
	if err != nil {
		t.Fatal(err)
	}
	if want := []int{19, 8, 23, 11, 25, 22}; !reflect.DeepEqual(got, want) {
		t.Errorf("with nothing excluded: %v, want %v", got, want)
	}
	if got, _ := s.Sample(0); got != nil {
		t.Errorf("zero shots drew %v", got)
	}
}
