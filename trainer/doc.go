// Package trainer runs SALR fine-tuning: it prepares a model for a method
// (pruning the frozen base, building the SVD residual adapter and LoRA), runs
// the training loop on the gorgonia graph (AdamW, schedules, gradient
// accumulation and clipping), writes metrics, checkpoints that resume bit for
// bit, and the run directory's exports (PEFT adapter, pruned base, plots).
package trainer
