//go:build amd64 && !purego

package bitmap

// Declarations of the generated small-batch kernels (kernels_batch_amd64.s).

//go:generate go run gen_batch.go

//go:noescape
func dotBitmapBF16x4(y []float32, masks []uint16, vals []uint16, x []float32, chunks, rows int)

//go:noescape
func dotBitmapF16x4(y []float32, masks []uint16, vals []uint16, x []float32, chunks, rows int)

//go:noescape
func dotBitmapF32x4(y []float32, masks []uint16, vals []float32, x []float32, chunks, rows int)

//go:noescape
func dotDenseBF16x4(y []float32, w []uint16, x []float32, cols, rows int)

//go:noescape
func dotBitmapBF16x8(y []float32, masks []uint16, vals []uint16, x []float32, chunks, rows int)

//go:noescape
func dotBitmapF16x8(y []float32, masks []uint16, vals []uint16, x []float32, chunks, rows int)

//go:noescape
func dotBitmapF32x8(y []float32, masks []uint16, vals []float32, x []float32, chunks, rows int)

//go:noescape
func dotDenseBF16x8(y []float32, w []uint16, x []float32, cols, rows int)

//go:noescape
func dotBitmapBF16x12(y []float32, masks []uint16, vals []uint16, x []float32, chunks, rows int)

//go:noescape
func dotBitmapF16x12(y []float32, masks []uint16, vals []uint16, x []float32, chunks, rows int)

//go:noescape
func dotBitmapF32x12(y []float32, masks []uint16, vals []float32, x []float32, chunks, rows int)

//go:noescape
func dotDenseBF16x12(y []float32, w []uint16, x []float32, cols, rows int)

//go:noescape
func dotBitmapBF16x16(y []float32, masks []uint16, vals []uint16, x []float32, chunks, rows int)

//go:noescape
func dotBitmapF16x16(y []float32, masks []uint16, vals []uint16, x []float32, chunks, rows int)

//go:noescape
func dotBitmapF32x16(y []float32, masks []uint16, vals []float32, x []float32, chunks, rows int)

//go:noescape
func dotDenseBF16x16(y []float32, w []uint16, x []float32, cols, rows int)
