package kernels

// Matrix is a read-only weight matrix W with Rows() output features and Cols()
// input features (the PyTorch/HF nn.Linear layout, out × in), in whatever
// storage format implements it: dense here, bitmap-compressed in
// kernels/bitmap. Frozen base weights are held as a Matrix so that training and
// inference run on the same storage.
type Matrix[T Float] interface {
	// Rows is the number of output features (d_out).
	Rows() int
	// Cols is the number of input features (d_in).
	Cols() int
	// MulT computes y = x Wᵀ for x n×Cols and y n×Rows (y is overwritten).
	MulT(y, x []T, n int)
	// Mul computes dx = dy W for dy n×Rows and dx n×Cols (dx is overwritten):
	// the input gradient of MulT.
	Mul(dx, dy []T, n int)
}

// Dense is a row-major dense Matrix; W[i*C+j] is the weight from input j to
// output i.
type Dense[T Float] struct {
	W    []T
	R, C int
}

// NewDense wraps w (r×c, row-major) without copying it.
func NewDense[T Float](w []T, r, c int) *Dense[T] {
	if len(w) != r*c {
		panic("kernels: NewDense: len(w) != r*c")
	}
	return &Dense[T]{W: w, R: r, C: c}
}

// Rows implements Matrix.
func (d *Dense[T]) Rows() int { return d.R }

// Cols implements Matrix.
func (d *Dense[T]) Cols() int { return d.C }

// MulT implements Matrix: y (n×R) = x (n×C) Wᵀ.
func (d *Dense[T]) MulT(y, x []T, n int) {
	checkLen("Dense.MulT x", x, n*d.C)
	checkLen("Dense.MulT y", y, n*d.R)
	Gemm(false, true, n, d.R, d.C, 1, x, d.C, d.W, d.C, 0, y, d.R)
}

// Mul implements Matrix: dx (n×C) = dy (n×R) W.
func (d *Dense[T]) Mul(dx, dy []T, n int) {
	checkLen("Dense.Mul dy", dy, n*d.R)
	checkLen("Dense.Mul dx", dx, n*d.C)
	Gemm(false, false, n, d.C, d.R, 1, dy, d.R, d.W, d.C, 0, dx, d.C)
}

// checkLen panics when a slice is shorter than a kernel needs.
func checkLen[T any](what string, s []T, n int) {
	if len(s) < n {
		panic("kernels: " + what + ": slice too short")
	}
}

// RowGatherer is a Matrix whose rows can be read out whole: the token
// embedding is a frozen table looked up by row, stored densely in float32 or,
// for a bf16 checkpoint, as bf16 (bitmap.DenseBF16).
type RowGatherer[T Float] interface {
	Matrix[T]
	// GatherRows writes row ids[r] of W into dst[r*Cols():(r+1)*Cols()] for
	// every r. It panics on an id outside [0, Rows()).
	GatherRows(dst []T, ids []int)
}

// GatherRows implements RowGatherer: EmbeddingForward over W.
func (d *Dense[T]) GatherRows(dst []T, ids []int) { EmbeddingForward(dst, d.W, ids, d.C) }
