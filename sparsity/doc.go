// Package sparsity computes the static pruning masks of SALR and splits a
// frozen base weight into its kept part and the pruning residual.
//
// Everything here is pure math on float32 slices holding one weight matrix W0
// in the HF nn.Linear layout: rows are output features, columns are input
// features, row-major (W0[i*cols+j] connects input j to output i). The package
// knows nothing about files or graphs.
//
// A mask is computed once from W0 before fine-tuning (Spec.Mask): the score of
// each weight is its magnitude |W_ij| (Magnitude, the paper's default) or the
// Wanda score |W_ij|·||X_j||₂ (Wanda, with the input-feature norms gathered by
// a Calibration from a few batches of activations). The Pattern decides which
// weights compete: all of the matrix (PerMatrix), each output row (PerRow), or
// each group of M consecutive inputs of a row (NM: N:M keeps N of every M, as
// PyTorch and NVIDIA count it, so 2:4 keeps 2 of every 4 and 1:4 keeps 1).
// Counts are exact: round(ratio·size) weights are pruned per matrix,
// round(ratio·cols) per row, M-N per group. Ties are broken deterministically:
// a smaller score is pruned first and, among equal scores, the lower flat
// (row-major) index is pruned first.
//
// Split then yields the kept base W0⊙M and the residual E = W0 − W0⊙M with the
// per-entry MSE and Frobenius norms; ParseTargets/Targets.Match say which HF
// tensors are pruned at all (PEFT-style target_modules).
package sparsity
