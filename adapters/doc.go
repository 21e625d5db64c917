// Package adapters holds the low-rank adapters of SALR and the fused
// adapter op that trains them with one pair of GEMMs per projection.
//
// For a projection with frozen base W0 (Out×In, pruned by package sparsity to
// W0⊙M), SALR adds two adapters (ARCHITECTURE.md, "What SALR is"):
//
//   - LoRA (NewLoRA): A Kaiming-uniform or Gaussian, B zero, scale alpha/r
//     (alpha/√r with rsLoRA), dropout on its input as PEFT does;
//   - the SVD residual adapter (NewSVDAdapter): the rank-r truncated SVD
//     U_r Σ_r V_rᵀ of the pruning residual E = W0 − W0⊙M (SVD: exact for
//     small matrices, ExactSVD; a randomized range finder with power
//     iterations for large ones, RandomizedSVD), as B = U_r Σ_r^{1/2},
//     A = Σ_r^{1/2} V_rᵀ, scale 1.
//
// Concat stacks a projection's adapters along the rank dimension into a Fused
// adapter (A_cat = [A_lora; A_svd], B_cat = [B_lora, B_svd] and a per-rank
// scale vector), and FusedKernel is the gorgonia op (through kernels/gop) that
// computes y = ((x A_catᵀ) ⊙ scale) B_catᵀ with its own backward pass
// (kernels.FusedAdapterForward/Backward). Keeping B unscaled and applying the
// scale between the two GEMMs makes the op exactly PEFT's
// x Wᵀ + s·(x A_loraᵀ) B_loraᵀ + (x A_svdᵀ) B_svdᵀ with PEFT's gradients for
// A_lora and B_lora.
//
// Fused.MergeInto folds the adapters into a dense matrix (UnmergeFrom takes
// them out again), and WritePEFT / ReadPEFT export and load the adapters in
// HuggingFace PEFT's LoRA format (adapter_config.json and
// adapter_model.safetensors with base_model.model.<module>.lora_A/B.weight
// keys; docs/protocols.md), SALR's two adapters as one LoRA of rank
// r_lora + r_svd with the scales folded into B.
package adapters
