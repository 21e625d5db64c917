package eval

import (
	"fmt"

	"github.com/salr-go/salr/model/tokenizer"
)

// encoder is the model's tokenizer as the evaluation feeds it: BOS is
// prepended only when the run asks for it (lm-eval's add_bos_token), and
// encodings are remembered until forget so that the several requests built
// from one prompt (four continuations, shot-count attempts) encode each string
// once. It satisfies both datasets.Encoder and tokenizer.Tokenizer.
type encoder struct {
	tokenizer.Tokenizer
	bos bool
	// keepLast > 0 makes Encode keep only the last keepLast ids (keepLast-1
	// with BOS, so that a model input holds keepLast tokens): lm-eval's left
	// truncation of a prompt longer than the context.
	keepLast int
	memo     map[string][]int
}

// newEncoder wraps tok; bos asks for a BOS token before every prompt.
func newEncoder(tok tokenizer.Tokenizer, bos bool) (*encoder, error) {
	if bos && tok.BOS() < 0 {
		return nil, fmt.Errorf("eval: BOS requested but the tokenizer has no BOS token")
	}
	return &encoder{Tokenizer: tok, bos: bos, memo: map[string][]int{}}, nil
}

// AddBOS reports whether model inputs start with BOS (the run's choice, not
// the tokenizer's default).
func (e *encoder) AddBOS() bool { return e.bos }

// Encode returns the ids of text without special tokens, left-truncated when
// keepLast is set. The returned slice is the caller's.
func (e *encoder) Encode(text string) ([]int, error) {
	ids, ok := e.memo[text]
	if !ok {
		var err error
		if ids, err = e.Tokenizer.Encode(text); err != nil {
			return nil, err
		}
		e.memo[text] = ids
	}
	if e.keepLast > 0 {
		keep := e.keepLast
		if e.bos {
			keep--
		}
		if len(ids) > keep {
			ids = ids[len(ids)-keep:]
		}
	}
	return append([]int(nil), ids...), nil
}

// modelInput is what the model reads for a prompt: BOS when asked for, then
// enc(prompt).
func (e *encoder) modelInput(prompt string) ([]int, error) {
	ids, err := e.Encode(prompt)
	if err != nil {
		return nil, err
	}
	if e.bos {
		ids = append([]int{e.BOS()}, ids...)
	}
	return ids, nil
}

// truncating returns a view of e whose Encode keeps only the last n tokens
// of a model input; it shares e's memo.
func (e *encoder) truncating(n int) *encoder {
	t := *e
	t.keepLast = n
	return &t
}

// forget drops the remembered encodings.
func (e *encoder) forget() { clear(e.memo) }
