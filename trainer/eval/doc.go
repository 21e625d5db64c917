// Package eval runs the evaluation tasks of SALR on a loaded model, as
// EleutherAI's lm-evaluation-harness (0.4) runs them, with the same prompts,
// shots, requests and metrics, so that the numbers compare with lm-eval's:
//
//   - gsm8k (task v3): few-shot prompts with shots drawn from the train split
//     by lm-eval's sampler (seed 1234, one draw per test document in order),
//     batched greedy generation with a KV cache until "Question:", "</s>",
//     "<|im_end|>", EOS or 256 new tokens, and exact match under the
//     strict-match and flexible-extract filters with lm-eval's stderr.
//   - mmlu: per subject the description and the first k dev questions of
//     the same subject as shots (all of them when it has fewer than k, which
//     the results list; a test file without questions is an error), the
//     log-likelihood of " A".." D" after the question (lm-eval's
//     loglikelihood requests, tokenised as its _encode_pair does), arg-max
//     prediction; accuracy per subject, per category and overall
//     (size-weighted, pooled standard errors).
//
// Efficiency: MMLU prompts of one subject share the few-shot prefix, which
// is run through the model once per subject; each document starts from a
// copy of its cache (as much of it as the document's tokens share) and runs
// only the rest, and the four continuations are scored from that one run,
// multi-token continuations on copies of the document's cache. Documents are
// batched through model.Runner.Forward with one cache each.
//
// Prompts longer than the model's context drop shots from the front (oldest
// first) until they fit; the results count how many. A zero-shot prompt
// that still does not fit loses its oldest tokens (lm-eval's left
// truncation), and a GSM8K generation that does not fit is capped at the
// context left; both are counted too.
//
// Run returns Results, which marshal to results.json and render as lm-eval's
// Markdown table; sample records (-log-samples) go through
// datasets.SampleWriter.
package eval
