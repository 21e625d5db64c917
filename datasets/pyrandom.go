package datasets

import (
	"fmt"
	"math/bits"
)

// pyRandom reproduces CPython's random.Random bit for bit: the MT19937
// generator (Matsumoto and Nishimura's mt19937ar), seeded from an integer as
// random.seed(int) does (init_by_array over the integer's 32-bit words, least
// significant first), with getrandbits, _randbelow and sample on top. It
// exists so that few-shot selection matches lm-evaluation-harness, which
// draws shots with random.Random(1234).sample.
type pyRandom struct {
	mt  [mtN]uint32
	idx int
}

const (
	mtN         = 624
	mtM         = 397
	mtMatrixA   = 0x9908b0df
	mtUpperMask = 0x80000000
	mtLowerMask = 0x7fffffff
)

// newPyRandom returns the generator of Python's random.Random(seed).
// Python seeds with abs(seed); seeds here are non-negative by type.
func newPyRandom(seed uint64) *pyRandom {
	key := []uint32{uint32(seed)}
	if hi := uint32(seed >> 32); hi != 0 {
		key = append(key, hi)
	}
	r := &pyRandom{}
	r.seedArray(key)
	return r
}

// seedGenrand is mt19937ar's init_genrand.
func (r *pyRandom) seedGenrand(s uint32) {
	r.mt[0] = s
	for i := 1; i < mtN; i++ {
		prev := r.mt[i-1]
		r.mt[i] = 1812433253*(prev^(prev>>30)) + uint32(i)
	}
	r.idx = mtN
}

// seedArray is mt19937ar's init_by_array.
func (r *pyRandom) seedArray(key []uint32) {
	if len(key) == 0 {
		panic("datasets: pyRandom.seedArray needs at least one key word")
	}
	r.seedGenrand(19650218)
	i, j := 1, 0
	for k := max(mtN, len(key)); k > 0; k-- {
		prev := r.mt[i-1]
		r.mt[i] = (r.mt[i] ^ ((prev ^ (prev >> 30)) * 1664525)) + key[j] + uint32(j)
		i++
		j++
		if i >= mtN {
			r.mt[0] = r.mt[mtN-1]
			i = 1
		}
		if j >= len(key) {
			j = 0
		}
	}
	for k := mtN - 1; k > 0; k-- {
		prev := r.mt[i-1]
		r.mt[i] = (r.mt[i] ^ ((prev ^ (prev >> 30)) * 1566083941)) - uint32(i)
		i++
		if i >= mtN {
			r.mt[0] = r.mt[mtN-1]
			i = 1
		}
	}
	r.mt[0] = 0x80000000
	r.idx = mtN
}

// twist regenerates the state block (the first half of genrand_uint32).
func (r *pyRandom) twist() {
	mag := func(y uint32) uint32 { return (y & 1) * mtMatrixA }
	var kk int
	for kk = 0; kk < mtN-mtM; kk++ {
		y := (r.mt[kk] & mtUpperMask) | (r.mt[kk+1] & mtLowerMask)
		r.mt[kk] = r.mt[kk+mtM] ^ (y >> 1) ^ mag(y)
	}
	for ; kk < mtN-1; kk++ {
		y := (r.mt[kk] & mtUpperMask) | (r.mt[kk+1] & mtLowerMask)
		r.mt[kk] = r.mt[kk+(mtM-mtN)] ^ (y >> 1) ^ mag(y)
	}
	y := (r.mt[mtN-1] & mtUpperMask) | (r.mt[0] & mtLowerMask)
	r.mt[mtN-1] = r.mt[mtM-1] ^ (y >> 1) ^ mag(y)
	r.idx = 0
}

// uint32 is genrand_uint32: the next tempered 32-bit output.
func (r *pyRandom) uint32() uint32 {
	if r.idx >= mtN {
		r.twist()
	}
	y := r.mt[r.idx]
	r.idx++
	y ^= y >> 11
	y ^= (y << 7) & 0x9d2c5680
	y ^= (y << 15) & 0xefc60000
	y ^= y >> 18
	return y
}

// getRandBits is random.getrandbits(k) for 0 <= k <= 64: 32-bit words, least
// significant first, the last one shifted right to keep its top bits.
func (r *pyRandom) getRandBits(k int) uint64 {
	if k < 0 || k > 64 {
		panic(fmt.Sprintf("datasets: getRandBits(%d) outside 0..64", k))
	}
	var out uint64
	for shift := 0; k > 0; shift, k = shift+32, k-32 {
		w := r.uint32()
		if k < 32 {
			w >>= 32 - k
		}
		out |= uint64(w) << shift
	}
	return out
}

// random is random.random(): a 53-bit float in [0, 1).
func (r *pyRandom) random() float64 {
	a, b := r.uint32()>>5, r.uint32()>>6
	return (float64(a)*67108864.0 + float64(b)) * (1.0 / 9007199254740992.0)
}

// randBelow is random._randbelow(n) for n > 0: rejection sampling with
// getrandbits(n.bit_length()).
func (r *pyRandom) randBelow(n uint64) uint64 {
	if n == 0 {
		panic("datasets: randBelow(0)")
	}
	k := bits.Len64(n)
	v := r.getRandBits(k)
	for v >= n {
		v = r.getRandBits(k)
	}
	return v
}

// sample is random.sample(range(n), k): k distinct indices in selection
// order, by Python's pool algorithm when a list of n is smaller than a set of
// k (n <= setsize) and its set algorithm otherwise. Python computes setsize
// with 4**ceil(log(3k, 4)); since 3k is never a power of four, that is the
// smallest power of four >= 3k, computed here exactly in integers.
func (r *pyRandom) sample(n, k int) ([]int, error) {
	if k < 0 || k > n {
		return nil, fmt.Errorf("datasets: cannot sample %d items from a population of %d", k, n)
	}
	result := make([]int, k)
	setsize := 21
	if k > 5 {
		p := 1
		for p < 3*k {
			p *= 4
		}
		setsize += p
	}
	if n <= setsize {
		pool := make([]int, n)
		for i := range pool {
			pool[i] = i
		}
		for i := 0; i < k; i++ {
			j := int(r.randBelow(uint64(n - i)))
			result[i] = pool[j]
			pool[j] = pool[n-i-1]
		}
		return result, nil
	}
	selected := make(map[int]bool, k)
	for i := 0; i < k; i++ {
		j := int(r.randBelow(uint64(n)))
		for selected[j] {
			j = int(r.randBelow(uint64(n)))
		}
		selected[j] = true
		result[i] = j
	}
	return result, nil
}

// LMEvalFewShotSeed is lm-evaluation-harness's default fewshot_random_seed.
const LMEvalFewShotSeed = 1234

// FewShotSampler picks few-shot examples exactly as lm-evaluation-harness's
// default ContextSampler: one random.Random(seed) per task, and for every
// evaluated document, in document order, rnd.sample(fewshot_docs, k). Call
// Sample (or SampleExcluding) once per document, in order, even for documents
// you skip, or later documents get different shots.
type FewShotSampler struct {
	rnd      *pyRandom
	poolSize int
}

// NewFewShotSampler returns a sampler over a few-shot pool of poolSize
// documents (GSM8K: the 7,473 train problems), seeded like Python's
// random.Random(seed); lm-eval uses LMEvalFewShotSeed.
func NewFewShotSampler(poolSize int, seed uint64) *FewShotSampler {
	if poolSize < 0 {
		panic(fmt.Sprintf("datasets: negative few-shot pool size %d", poolSize))
	}
	return &FewShotSampler{rnd: newPyRandom(seed), poolSize: poolSize}
}

// Sample returns the pool indices of the k shots for the next document, in
// prompt order, for a pool drawn from another split than the evaluated one
// (GSM8K: shots from train, questions from test). k = 0 draws nothing.
func (s *FewShotSampler) Sample(k int) ([]int, error) {
	if k == 0 {
		return nil, nil
	}
	return s.rnd.sample(s.poolSize, k)
}

// SampleExcluding is Sample for a pool that is the evaluated split itself:
// like lm-eval it draws k+1 indices, removes those for which isEvalDoc is
// true (documents equal to the one being evaluated) and keeps the first k.
func (s *FewShotSampler) SampleExcluding(k int, isEvalDoc func(poolIndex int) bool) ([]int, error) {
	if k == 0 {
		return nil, nil
	}
	drawn, err := s.rnd.sample(s.poolSize, min(k+1, s.poolSize))
	if err != nil {
		return nil, err
	}
	kept := drawn[:0]
	for _, i := range drawn {
		if !isEvalDoc(i) {
			kept = append(kept, i)
		}
	}
	return kept[:min(k, len(kept))], nil
}
