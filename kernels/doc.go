// Package kernels holds the numerically heavy pieces of SALR, written once as
// plain functions on slices: the dense GEMM/GEMV backend, the transformer layer
// pieces (linear, RMSNorm, RoPE, causal attention, SwiGLU, embedding,
// cross-entropy) as forward/backward pairs, the fused adapter GEMMs, and the
// bf16/fp16 conversions.
//
// Shapes are named once in each doc comment, row-major, llm.c style: N is the
// number of token rows (batch × sequence), C the model width, V the vocabulary,
// H and KV the query and key/value head counts, D the head size.
//
// Functions are generic over Float so that the same code runs in float32 for
// real work and in float64 for numeric gradient checks. Backward functions
// overwrite their outputs (they never accumulate) and skip any output passed as
// nil. Programmer errors (mismatched lengths) panic with a "kernels:" prefix;
// this package never returns errors for user input and imports no package of
// this project outside kernels/ (the vectorized float32 math lives in
// kernels/internal/vecmath, in Go assembly, which a cgo package cannot hold).
package kernels
