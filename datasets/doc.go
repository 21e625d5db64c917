// Package datasets reads the training and evaluation data of SALR (GSM8K,
// MMLU and its auxiliary_train split, MetaMathQA, generic prompt/response
// JSONL), renders prompts byte-for-byte as EleutherAI's
// lm-evaluation-harness does (task gsm8k v3 and the default mmlu template)
// and MetaMathQA in its authors' template, tokenises examples with loss
// masks, batches them for next-token training, and scores model outputs
// (answer extraction, accuracy, standard errors, MMLU category aggregation,
// sample logs).
//
// It runs no model: evaluation helpers produce exact prompt strings and
// token requests, and score what the caller's model returned. The tokenizer is
// reached through the small Encoder interface, so this package imports no
// other package of the project.
//
// Readers return errors that name the file and line of bad input; they never
// panic on user data. Programmer errors (for example a negative shot count)
// panic with a "datasets:" prefix.
package datasets
