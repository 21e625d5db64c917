// Package bitmap stores a pruned (sparse) weight matrix as a bitmap of its
// nonzero positions plus the packed nonzero values, and multiplies with it
// without ever materialising the dense matrix in memory for batch-1 decode.
//
// # Layout
//
// W is Rows × Cols (out × in, the nn.Linear layout of kernels.Matrix). Each row
// is cut into chunks of 16 consecutive columns; a chunk is described by one
// uint16 mask whose bit j says whether W[r, 16c+j] is nonzero. The row's
// nonzeros are packed left to right, and rows follow each other:
//
//	          chunk 0             chunk 1                 chunk C16-1
//	        ┌──────────────────┬──────────────────┬─────┬────────────────────┐
//	row 0   │ b0 b1 ...    b15 │ b16 ...      b31 │ ... │ ... Cols-1 | 0 pad │  Bitmap: Rows × C16 uint16,
//	row 1   │                  │                  │     │                    │  C16 = ceil(Cols/16),
//	 ...    │                  │                  │     │                    │  bit j of Bitmap[r*C16+c]
//	row R-1 │                  │                  │     │                    │  ⇔ W[r,16c+j] != 0
//	        └──────────────────┴──────────────────┴─────┴────────────────────┘
//
//	Values  │ row 0: v v v v v v ... │ row 1: v v v ... │ ... │ row R-1: ... │ (16 spare)
//	        ^ RowPtr[0] = 0          ^ RowPtr[1]                             ^ RowPtr[R] = nnz
//
// Values are bf16 or fp16 bit patterns ([]uint16) or fp32. RowPtr (Rows+1
// uint32, as the indptr of CSR) gives where each row's values start, so any
// row range can be decoded or multiplied independently (rows are split across
// cores that way). Storage at 50% sparsity in bf16 is 1 bit + 8 bits per
// weight plus 4 bytes per row: 0.563× of dense bf16 at 4096 columns.
//
// NF4 (bitmap-nf4, dense-nf4) keeps the same bitmap and RowPtr (none for
// dense-nf4) with the values in QLoRA's 4-bit NormalFloat: two code-book
// indices per byte and an absmax scale per 64 values, optionally
// double-quantized (see NF4); 0.19× of dense bf16 at 50%. Its products decode
// groups of rows to bf16 and run the bf16 kernels on them, except the
// batch-1 product of dense-nf4 with rows of whole blocks on the avx2 path,
// which multiplies straight from the codes (nf4dot_amd64.go).
//
// # Kernels
//
// One row is one sequential stream of masks and one of values, so the
// batch-1 product y = x Wᵀ (MulT with n = 1) reads every compressed byte
// exactly once in address order. With AVX-512 the chunks go in groups of
// four: one 64-bit load of their masks gives, by popcounts of its low 16, 32
// and 48 bits and of all of it, where each chunk's values start and how far
// the value pointer moves. Per chunk: the mask goes to a k register, 16 values
// are loaded and widened to fp32 (bf16: vpmovzxwd + vpslld 16; fp16:
// vcvtph2ps; fp32: none), vexpandps moves the packed values to the lanes the
// mask selects, and one FMA masked by the same mask accumulates (x is never
// read at pruned or padding positions). Both streams are prefetched in
// software. Rows are handed out to the cores in blocks on demand.
//
// The chunk loop is bound by the vector shuffle port (vpmovzxwd and the
// two-uop vexpandps all run on port 5 of Intel cores), about 3 cycles per 16
// weights; the CPU this was tuned on (Cascade Lake) has no AVX-512 VBMI2, so
// there is no vpexpandw to expand bf16 before widening.
//
// With AVX2 (no mask registers, no vexpandps) a chunk is done as two halves
// of 8 columns. The half's mask byte m indexes a table built once with one
// entry per byte value: for bf16, vbroadcasti128 puts the next 16 bytes of
// values in both 128-bit lanes and one vpshufb with the 32-byte entry moves
// value k (k = bits of m below bit i) into the high half of fp32 lane i and
// zeros every other byte, so shuffling and widening are one instruction; fp16
// shuffles 8 halves the same way and widens them with vcvtph2ps; fp32
// permutes with vpermps and zeros the unselected lanes with an AND. The value
// pointer moves by popcount(m). The batch-1 dots (bitmap and dense bf16)
// take four rows at a time, each chunk of x loaded once for all four: a GEMV
// at batch 1 is bound by the streams in flight per core, and on Zen 3 one
// stream per core reads about 14 GB/s, four about 19. The bf16 bitmap dot
// takes its four rows from the four quarters of its range (streams far
// apart), dense bf16 four consecutive rows. A last group of fewer than four
// repeats a row, so every row goes through the same operations whatever
// range the scheduler hands out; the fp16 and fp32 bitmap dots take two rows
// at a time, one from each half of the range. x, dx and dst are accessed in
// whole chunks (unselected lanes multiply x by zero); rows whose columns end
// inside a chunk get a zero-padded copy of x or dx, and the last row of a
// decoded range goes through a scratch row. Dense bf16 loads 16 weights at
// once and splits them into the even ones (vpslld 16) and the odd ones (vpand
// 0xffff0000), so its kernels run on x and dx permuted per block of 16 (even
// columns, then odd); the columns after the last whole block are done in Go.
// The AVX2 small-batch kernels of bf16 weights (bitmap and dense) are
// register-blocked: two rows of W times four rows of x per pass, each half
// chunk of a W row decoded once per pass into a register (bitmap as above,
// dense by vpmovzxwd and vpslld 16, in column order) and multiplied with the
// matching 8 columns of the four rows of x, loaded once for both W rows from
// the chunk-major layout; 8 accumulators, one per (W row, x row) pair, summed
// horizontally and added to the output at the end of a block of columns.
// Passes over the groups of four rows of x re-decode the two W rows, which
// stay in L1. x (up to 256 KB at 4096 columns and 16 rows) would come from
// L2 for every pair of W rows, so the rows are taken in tiles of 8 and the
// columns in blocks of 512 (8 KB of x per 4 rows of x) that stay in L1 for
// the whole tile. A last odd W row of a tile is paired with itself and the
// blocks are fixed, so results depend neither on the ranges the scheduler
// hands out nor on the batch size. The fp16 and fp32 bitmap
// small batches decode 4 rows at a time into an L1-resident fp32 buffer and
// multiply it with the chunk-major x, four rows of x per pass.
//
// Small batches (1 < n <= 16, e.g. batched decoding) run kernels that decode
// each chunk once and multiply it with all rows of x (padded to 4, 8, 12 or
// 16 rows, laid out chunk-major so that the n vectors of a chunk are
// adjacent), so W is still streamed once. Larger batches (prefill, training)
// decode the matrix panel by panel (PanelElems fp32 values at a time) into
// dense fp32 buffers and multiply each panel with the dense BLAS
// (kernels.Gemm): a producer goroutine decodes panel k+1 into a ring of
// PipelineDepth buffers while panel k is multiplied.
//
//	producer:  decode P0 → buf A │ decode P1 → buf B │ decode P2 → buf A │ ...
//	caller:                      │ Gemm(x, P0ᵀ)      │ Gemm(x, P1ᵀ)      │ ...
//	                               y[:, rows of P0]    y[:, rows of P1]
//
// Mul (dX = dY W, the backward of the frozen base) runs per-row axpy at n = 1
// (one partial sum per block of rows, added in block order, so results do not
// depend on scheduling) and the panel pipeline with accumulation otherwise.
// A kernel set may replace the pipeline above 16 rows by its own batched
// products (the avx512bf16 set does for bf16 weights, below).
//
// DenseBF16 is the uncompressed bf16 baseline on the same engine: the same
// loops without bitmap (load, widen, FMA) and the same pipeline.
//
// # Implementations
//
// Every kernel has a pure-Go reference (kernels_generic.go). On amd64 without
// the purego build tag there are three assembly sets, chosen at run time from
// what golang.org/x/sys/cpu reports: "avx2" (AVX2, FMA, F16C and POPCNT;
// every x86 CPU since Haswell and Zen 1), "avx512" (AVX-512 F, plus POPCNT)
// and "avx512bf16" (below). New matrices use the last exact set the CPU runs
// in the order go, avx2, avx512: products of stored weights with fp32
// activations, accumulated in fp32. avx512bf16 rounds the activations to
// bf16, so it is used where that is asked for: by BF16Activations views,
// which bf16 training (train.precision = "bf16") multiplies its frozen bases
// through, or by name. The environment variable
// SALR_KERNEL_PATH=go|avx2|avx512|avx512bf16 picks the default set, to
// compare paths on one machine; a value that names no set of this build, or
// one the CPU cannot run, prints a warning on stderr when the package
// initialises and keeps the default. One shared test suite runs every set the CPU supports
// and prints which ones it ran and which it skipped for lack of a CPU feature.
//
// Where the CPU also has AVX-512 BW and BF16, the avx512bf16 set replaces the
// dot products of bf16 weights (dense and, with VBMI2, bitmap; batch 1 and the
// small batches) by VDPBF16PS kernels: x is rounded to bf16 once per call
// (VCVTNE2PS2BF16, nearest even), and each instruction multiplies 32 weights of
// a row with 32 values of x, adding the exact products in pairs into 16 fp32
// sums. The bitmap kernel takes two chunk masks (32 columns) at a time into a k
// register and places the packed bf16 values with vpexpandw, with no widening
// to fp32.
//
// Above 16 rows, MulT and Mul of bf16 weights (dense, and bitmap with or
// without VBMI2) skip the fp32 panel pipeline for a VDPBF16PS GEMM (unless
// BF16Batches is false). Its tile
// multiplies 12 rows of one operand, read in place with any stride, each pair
// of columns broadcast to all lanes, with 32 rows of the other, packed as
// bf16 pairs (two vectors per pair of columns), into 24 fp32 accumulators.
// MulT broadcasts rows of W: dense bf16 rows as stored, bitmap rows decoded
// to bf16 by groups of 32 columns (vpexpandw with VBMI2, else the avx512
// decode and an exact rounding) into a scratch of four blocks of 12 rows per
// core, with x rounded and packed once per call. Mul broadcasts rows of dY
// (rounded once) and packs W in pairs of rows (two vpermt2w per 32 columns),
// panel by panel of 2048 rows, split across cores. Each core takes blocks of
// rows of W (MulT) or of 32 columns (Mul) four at a time and runs every
// block of the packed operand against them in turn, over spans of 2048
// columns, so what is reused stays in L2; the decode of a bitmap block is
// fused into the product, with no pipeline. Tiles land in the outputs through
// Go loops (MulT transposes them). None of this has been timed: it was
// written on a CPU without AVX-512 and checked by the emulator in
// testdata/emulate.
//
// The results differ from the fp32 paths by the rounding of x (or dY), at
// most 2⁻⁸ Σ|w||x|, the tolerance the suite tests them with. Go's assembler has no mnemonics for the BF16
// instructions, so they are written as bytes. Because such code may run first
// on a machine nobody tested it on, the set checks itself against the avx512
// set (and its batched products against a float64 product) on small random
// matrices when it would become the default, and on a mismatch the process
// warns on stderr and runs the avx512 set.
package bitmap
