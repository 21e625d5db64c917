package datasets

import (
	"fmt"
	"strings"
)

// Encoder is the tokenizer as this package needs it.
type Encoder interface {
	// Encode turns text into token ids without special tokens (no BOS/EOS).
	Encode(text string) ([]int, error)
	// BOS is the beginning-of-sequence id (negative if the tokenizer has none).
	BOS() int
	// EOS is the end-of-sequence id, or a negative value for none.
	EOS() int
	// AddBOS reports whether sequences start with BOS (true for Llama-family
	// SentencePiece tokenizers; lm-eval's add_bos_token).
	AddBOS() bool
}

// Sequence is one tokenised training example. Loss[i] reports whether token
// i is a target whose prediction (from tokens 0..i-1) counts in the loss.
type Sequence struct {
	Tokens []int
	Loss   []bool
}

// Overlong says what to do with an example longer than the token budget.
type Overlong int

const (
	// Truncate keeps the first maxTokens tokens (the end of the response and
	// the EOS are lost).
	Truncate Overlong = iota
	// Drop skips the example.
	Drop
)

// String returns "truncate" or "drop".
func (o Overlong) String() string {
	switch o {
	case Truncate:
		return "truncate"
	case Drop:
		return "drop"
	}
	return fmt.Sprintf("Overlong(%d)", int(o))
}

// ParseOverlong reads "truncate" or "drop" (as written in configs).
func ParseOverlong(s string) (Overlong, error) {
	switch strings.ToLower(strings.TrimSpace(s)) {
	case "truncate":
		return Truncate, nil
	case "drop":
		return Drop, nil
	}
	return 0, fmt.Errorf("datasets: overlong policy %q: want \"truncate\" or \"drop\"", s)
}

// tokenizeOutcome says what became of one example.
type tokenizeOutcome int

const (
	outcomeKept     tokenizeOutcome = iota
	outcomeDropped                  // too long under Drop
	outcomeNoTarget                 // no loss target left
)

// Tokenize encodes one example as
//
//	[BOS if enc.AddBOS()] + enc(Prompt+Response) + [EOS if enc.EOS() >= 0]
//
// and marks the response tokens and the EOS as loss targets.
//
// The prompt and the response are encoded together, not separately, because
// the tokenizer may merge across their boundary (SentencePiece attaches the
// space that ends "Answer: " to the first word of the answer). The prompt part
// is therefore the longest common prefix of enc(Prompt) and
// enc(Prompt+Response): every token from the first one that differs, i.e.
// the first token that depends on the response, is a target.
//
// maxTokens bounds the whole sequence including BOS and EOS (use T+1 for a
// training context of T: the loader predicts tokens 1..T from 0..T-1). An
// overlong sequence is cut to maxTokens tokens (Truncate, truncated = true)
// or skipped (Drop, keep = false). keep is also false when no loss target
// remains (for example when truncation cut the whole response).
func Tokenize(enc Encoder, ex Example, maxTokens int, overlong Overlong) (seq Sequence, truncated bool, keep bool, err error) {
	seq, truncated, outcome, err := tokenize(enc, ex, maxTokens, overlong)
	return seq, truncated, outcome == outcomeKept, err
}

// tokenize implements Tokenize and reports the outcome.
func tokenize(enc Encoder, ex Example, maxTokens int, overlong Overlong) (seq Sequence, truncated bool, outcome tokenizeOutcome, err error) {
	if maxTokens < 2 {
		return Sequence{}, false, 0, fmt.Errorf("datasets: token budget %d is too small (need at least 2 tokens)", maxTokens)
	}
	if overlong != Truncate && overlong != Drop {
		return Sequence{}, false, 0, fmt.Errorf("datasets: unknown overlong policy %v", overlong)
	}
	promptIDs, err := enc.Encode(ex.Prompt)
	if err != nil {
		return Sequence{}, false, 0, fmt.Errorf("datasets: encoding prompt: %w", err)
	}
	wholeIDs, err := enc.Encode(ex.Prompt + ex.Response)
	if err != nil {
		return Sequence{}, false, 0, fmt.Errorf("datasets: encoding prompt+response: %w", err)
	}
	common := CommonPrefixLen(promptIDs, wholeIDs)

	tokens := make([]int, 0, len(wholeIDs)+2)
	if enc.AddBOS() {
		tokens = append(tokens, enc.BOS())
		common++
	}
	tokens = append(tokens, wholeIDs...)
	if eos := enc.EOS(); eos >= 0 {
		tokens = append(tokens, eos)
	}
	loss := make([]bool, len(tokens))
	for i := common; i < len(tokens); i++ {
		loss[i] = true
	}
	if len(tokens) > maxTokens {
		if overlong == Drop {
			return Sequence{}, false, outcomeDropped, nil
		}
		tokens, loss = tokens[:maxTokens], loss[:maxTokens]
		truncated = true
	}
	if common >= len(tokens) {
		return Sequence{}, truncated, outcomeNoTarget, nil
	}
	return Sequence{Tokens: tokens, Loss: loss}, truncated, outcomeKept, nil
}

// CommonPrefixLen is the length of the longest common prefix of two token
// sequences (where a prompt's encoding and a longer text's agree).
func CommonPrefixLen(a, b []int) int {
	n := min(len(a), len(b))
	for i := 0; i < n; i++ {
		if a[i] != b[i] {
			return i
		}
	}
	return n
}

// TokenizeStats counts what TokenizeAll did with the examples.
type TokenizeStats struct {
	Kept      int // sequences returned (including truncated ones)
	Truncated int // kept after cutting to the token budget
	Dropped   int // skipped for being too long under Drop
	NoTarget  int // skipped because no loss target was left
}

// TokenizeAll tokenises examples with Tokenize and returns the kept
// sequences in order with counts. Encoding errors name the example index.
func TokenizeAll(enc Encoder, examples []Example, maxTokens int, overlong Overlong) ([]Sequence, TokenizeStats, error) {
	var stats TokenizeStats
	seqs := make([]Sequence, 0, len(examples))
	for i, ex := range examples {
		seq, truncated, outcome, err := tokenize(enc, ex, maxTokens, overlong)
		if err != nil {
			return nil, stats, fmt.Errorf("datasets: example %d: %w", i, err)
		}
		switch outcome {
		case outcomeKept:
			seqs = append(seqs, seq)
			stats.Kept++
			if truncated {
				stats.Truncated++
			}
		case outcomeDropped:
			stats.Dropped++
		case outcomeNoTarget:
			stats.NoTarget++
		}
	}
	return seqs, stats, nil
}

// EncodePair encodes a log-likelihood request as lm-eval's HFLM does
// (TemplateLM._encode_pair): trailing whitespace of the context moves to the
// front of the continuation; whole = enc(context+continuation),
// ctx = enc(context), cont = whole[len(ctx):] (a plain slice, even where
// enc(context) is not a prefix of whole). With enc.AddBOS() the BOS is
// prepended to ctx: lm-eval encodes both strings with BOS when its
// add_bos_token is set, which amounts to the same. Note that HFLM's default
// is add_bos_token=False (BOS only for Gemma), so to reproduce a default
// lm-eval run of a Llama model the Encoder must report AddBOS() == false.
// An empty context becomes [BOS] (or [EOS] when there is no BOS) and
// cont = enc(continuation), HFLM's prefix-token rule.
// A continuation that yields no tokens is an error.
func EncodePair(enc Encoder, context, continuation string) (ctx, cont []int, err error) {
	if context == "" {
		prefix := enc.BOS()
		if prefix < 0 {
			prefix = enc.EOS()
		}
		if prefix < 0 {
			return nil, nil, fmt.Errorf("datasets: empty context needs a BOS or EOS token as prefix")
		}
		cont, err = enc.Encode(continuation)
		if err != nil {
			return nil, nil, fmt.Errorf("datasets: encoding continuation: %w", err)
		}
		if len(cont) == 0 {
			return nil, nil, fmt.Errorf("datasets: continuation %q encodes to no tokens", continuation)
		}
		return []int{prefix}, cont, nil
	}
	trimmed := pyRStrip(context)
	continuation = context[len(trimmed):] + continuation
	context = trimmed
	whole, err := enc.Encode(context + continuation)
	if err != nil {
		return nil, nil, fmt.Errorf("datasets: encoding context+continuation: %w", err)
	}
	ctxIDs, err := enc.Encode(context)
	if err != nil {
		return nil, nil, fmt.Errorf("datasets: encoding context: %w", err)
	}
	if len(ctxIDs) >= len(whole) {
		return nil, nil, fmt.Errorf("datasets: continuation %q adds no tokens after context (context %d tokens, whole %d)", continuation, len(ctxIDs), len(whole))
	}
	cont = append([]int(nil), whole[len(ctxIDs):]...)
	if enc.AddBOS() {
		ctx = make([]int, 0, len(ctxIDs)+1)
		ctx = append(ctx, enc.BOS())
		ctx = append(ctx, ctxIDs...)
	} else {
		ctx = ctxIDs
	}
	return ctx, cont, nil
}

// FitShots chooses how many few-shot examples fit: render(j) must return the
// prompt built with the last j of the k shots (dropping from the front, the
// oldest first), and fits reports whether a prompt fits the model's context.
// It tries j = k, k-1, ..., 0 and returns the first prompt that fits and its
// j; when even the zero-shot prompt does not fit it returns that prompt and
// 0, and the caller must truncate further. The number of dropped shots is
// k - used.
func FitShots(k int, render func(k int) string, fits func(string) bool) (prompt string, used int) {
	if k < 0 {
		panic(fmt.Sprintf("datasets: FitShots with negative shot count %d", k))
	}
	for j := k; j > 0; j-- {
		p := render(j)
		if fits(p) {
			return p, j
		}
	}
	return render(0), 0
}
