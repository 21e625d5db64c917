package kernels

// Element-wise loops over activations, split across goroutines: at training
// shapes a single core cannot keep up with the memory they stream.

// MulElems writes dst[i] = a[i]·b[i] (dst may be a or b).
func MulElems[T Float](dst, a, b []T) {
	checkLen("MulElems a", a, len(dst))
	checkLen("MulElems b", b, len(dst))
	parallelFor(len(dst), len(dst), func(lo, hi int) {
		d, x, y := dst[lo:hi], a[lo:hi], b[lo:hi]
		for i := range d {
			d[i] = x[i] * y[i]
		}
	})
}

// AddElems writes dst[i] = a[i]+b[i] (dst may be a or b).
func AddElems[T Float](dst, a, b []T) {
	checkLen("AddElems a", a, len(dst))
	checkLen("AddElems b", b, len(dst))
	parallelFor(len(dst), len(dst), func(lo, hi int) {
		d, x, y := dst[lo:hi], a[lo:hi], b[lo:hi]
		for i := range d {
			d[i] = x[i] + y[i]
		}
	})
}

// CopyElems copies src into dst (len(dst) elements).
func CopyElems[T Float](dst, src []T) {
	checkLen("CopyElems src", src, len(dst))
	parallelFor(len(dst), len(dst), func(lo, hi int) { copy(dst[lo:hi], src[lo:hi]) })
}
