package sparsity

import "slices"

// Range lengths from which selection switches from sorting to radix select
// with 8-bit digits (four histogram passes of 256 bins) and with 16-bit digits
// (two passes of 65536 bins, which only pay off on long ranges).
const (
	radix8Min  = 256
	radix16Min = 1 << 16
)

// selector finds the k weights with the smallest scores in a range and
// reuses its scratch buffers between calls.
//
// Scores are the IEEE-754 bits of non-negative float32 values, whose unsigned
// order is their numeric order. The order is total: a smaller score comes
// first, and equal scores come in increasing flat index, so exactly k weights
// are pruned and the choice is deterministic.
type selector struct {
	keys []uint64
	hist []int
	// digitBits forces the radix path with this digit width (8 or 16); 0
	// chooses by range length. Tests use it to compare the paths.
	digitBits uint
}

// pruneSmallest prunes, in m, the k weights of [start, start+n) that come
// first in the (score, index) order.
func (s *selector) pruneSmallest(m *Mask, score []uint32, start, n, k int) {
	switch {
	case k <= 0:
	case k >= n:
		for i := start; i < start+n; i++ {
			m.Prune(i)
		}
	case s.digitBits != 0:
		s.radixPrune(m, score, start, n, k, s.digitBits)
	case n >= radix16Min:
		s.radixPrune(m, score, start, n, k, 16)
	case n >= radix8Min:
		s.radixPrune(m, score, start, n, k, 8)
	default:
		s.sortPrune(m, score, start, n, k)
	}
}

// sortPrune sorts the (score, offset) keys of a short range (n < 2³²).
func (s *selector) sortPrune(m *Mask, score []uint32, start, n, k int) {
	s.keys = s.keys[:0]
	for i := 0; i < n; i++ {
		s.keys = append(s.keys, uint64(score[start+i])<<32|uint64(i))
	}
	slices.Sort(s.keys)
	for _, key := range s.keys[:k] {
		m.Prune(start + int(uint32(key)))
	}
}

// radixPrune finds the k-th smallest score t digit by digit, from the most
// significant: each pass histograms the next digit of the scores that share
// the digits found so far. It then prunes every score below t and the first
// k−#{score < t} scores equal to t in index order: 32/digitBits+1 passes over
// the range, no sort. digitBits must divide 32.
func (s *selector) radixPrune(m *Mask, score []uint32, start, n, k int, digitBits uint) {
	bins := 1 << digitBits
	if len(s.hist) < bins {
		s.hist = make([]int, bins)
	}
	hist := s.hist[:bins]
	var threshold uint32 // the digits of t found so far, zeros below
	need := k            // rank of t among the scores sharing those digits
	for shift := 32 - digitBits; ; shift -= digitBits {
		clear(hist)
		above := shift + digitBits // bits already decided; x>>32 is 0 for uint32
		for i := start; i < start+n; i++ {
			if v := score[i]; v>>above == threshold>>above {
				hist[v>>shift&uint32(bins-1)]++
			}
		}
		digit, below := kthDigit(hist, need)
		threshold |= digit << shift
		need -= below
		if shift == 0 {
			break
		}
	}
	// need is now the number of scores equal to t that must go.
	for i := start; i < start+n; i++ {
		v := score[i]
		if v < threshold {
			m.Prune(i)
		} else if v == threshold && need > 0 {
			m.Prune(i)
			need--
		}
	}
}

// kthDigit returns the digit holding the k-th smallest entry (1-based) of a
// histogram and the number of entries with smaller digits.
func kthDigit(hist []int, k int) (digit uint32, below int) {
	for d, c := range hist {
		if below+c >= k {
			return uint32(d), below
		}
		below += c
	}
	panic("sparsity: radix select: histogram holds fewer than k entries")
}
