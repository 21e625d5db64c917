package kernels

import "fmt"

// EmbeddingForward gathers rows of an embedding table: out[r,:] = table[ids[r],:]
// for out [N,C] with N = len(ids) and table [V,C], V = len(table)/c. An id
// outside [0, V) panics.
func EmbeddingForward[T Float](out, table []T, ids []int, c int) {
	checkEmbedding("EmbeddingForward", table, ids, c)
	checkLen("EmbeddingForward out", out, len(ids)*c)
	for r, id := range ids {
		copy(out[r*c:(r+1)*c], table[id*c:(id+1)*c])
	}
}

// EmbeddingBackward writes the gradient of EmbeddingForward into dtable [V,C]
// (V = len(dtable)/c): dtable[v,:] = Σ over rows r with ids[r] == v of
// dout[r,:]. dtable is overwritten (zeroed, then scatter-added in row order).
func EmbeddingBackward[T Float](dtable, dout []T, ids []int, c int) {
	v := checkEmbedding("EmbeddingBackward", dtable, ids, c)
	checkLen("EmbeddingBackward dout", dout, len(ids)*c)
	clear(dtable[:v*c])
	for r, id := range ids {
		dst, src := dtable[id*c:(id+1)*c], dout[r*c:(r+1)*c]
		for j, g := range src {
			dst[j] += g
		}
	}
}

// checkEmbedding panics on a non-positive width or an id outside the table and
// returns the vocabulary size V = len(table)/c.
func checkEmbedding[T Float](fn string, table []T, ids []int, c int) int {
	if c <= 0 {
		panic(fmt.Sprintf("kernels: %s: width %d is not positive", fn, c))
	}
	v := len(table) / c
	for r, id := range ids {
		if id < 0 || id >= v {
			panic(fmt.Sprintf("kernels: %s: id %d of row %d outside the table [0, %d)", fn, id, r, v))
		}
	}
	return v
}
