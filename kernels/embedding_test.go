package kernels

import "testing"

func TestEmbeddingForward(t *testing.T) {
	rng := testRand(80)
	v, c := 5, 3
	table := randNormal(rng, v*c, 1)
	ids := []int{4, 0, 4, 2}
	out := make([]float64, len(ids)*c)
	EmbeddingForward(out, table, ids, c)
	for r, id := range ids {
		assertClose(t, "row", out[r*c:(r+1)*c], table[id*c:(id+1)*c], 0)
	}
	expectPanic(t, "id too large", func() { EmbeddingForward(out, table, []int{5}, c) })
	expectPanic(t, "negative id", func() { EmbeddingForward(out, table, []int{-1}, c) })
}

func TestEmbeddingBackwardGradients(t *testing.T) {
	rng := testRand(81)
	v, c := 6, 4
	ids := []int{1, 3, 1, 1, 5, 3} // repeated ids accumulate; 0, 2 and 4 get zero
	table := randNormal(rng, v*c, 1)
	R := randNormal(rng, len(ids)*c, 1)
	out := make([]float64, len(ids)*c)
	dtable := randNormal(rng, v*c, 1) // garbage that must be overwritten
	EmbeddingBackward(dtable, R, ids, c)
	gradCheck(t, "Embedding dtable", table, dtable, func() float64 {
		EmbeddingForward(out, table, ids, c)
		return dotSum(out, R)
	}, gradTol)
}
