package model

import (
	"fmt"
	"strings"

	"github.com/salr-go/salr/model/tokenizer"
)

// TextOptions configures GenerateText.
type TextOptions struct {
	MaxNewTokens int
	Sampler      *Sampler
	// Stops are strings that end the generation when they appear in the
	// output (the stop string itself is cut off). The tokenizer's EOS always
	// stops.
	Stops []string
	// OnText, when set, receives the output text as it grows (each call gets
	// the new part only), for streaming to a terminal.
	OnText func(delta string)
}

// GenerateText continues each prompt and returns the generated texts.
func GenerateText(r *Runner, tok tokenizer.Tokenizer, prompts []string, opt TextOptions) ([]string, error) {
	ids := make([][]int, len(prompts))
	for i, p := range prompts {
		enc, err := tok.Encode(p)
		if err != nil {
			return nil, fmt.Errorf("model: encoding prompt %d: %w", i, err)
		}
		if tok.AddBOS() && tok.BOS() >= 0 {
			enc = append([]int{tok.BOS()}, enc...)
		}
		if len(enc) == 0 {
			return nil, fmt.Errorf("model: prompt %d is empty and the tokenizer adds no BOS", i)
		}
		ids[i] = enc
	}
	var stopIDs []int
	if tok.EOS() >= 0 {
		stopIDs = append(stopIDs, tok.EOS())
	}
	// Decoding a continuation on its own would drop a leading space (the
	// SentencePiece dummy prefix), so decode prompt + continuation and cut
	// the decoded prompt off.
	promptText := make([]string, len(prompts))
	for i := range ids {
		promptText[i] = tok.Decode(ids[i])
	}
	decode := func(i int, generated []int) string {
		all := tok.Decode(append(append([]int(nil), ids[i]...), generated...))
		if strings.HasPrefix(all, promptText[i]) {
			return all[len(promptText[i]):]
		}
		return tok.Decode(generated)
	}
	texts := make([]string, len(prompts))
	cut := make([]int, len(prompts)) // -1: no stop string seen
	for i := range cut {
		cut[i] = -1
	}
	streamed := 0
	gen, err := r.Generate(ids, GenerateOptions{
		MaxNewTokens: opt.MaxNewTokens,
		Sampler:      opt.Sampler,
		StopIDs:      stopIDs,
		OnToken: func(seq int, generated []int) bool {
			text := decode(seq, generated)
			texts[seq] = text
			for _, s := range opt.Stops {
				if k := strings.Index(text, s); k >= 0 && (cut[seq] < 0 || k < cut[seq]) {
					cut[seq] = k
				}
			}
			if opt.OnText != nil && len(prompts) == 1 {
				// Stream what can no longer change: hold back a possible stop
				// string prefix and an unfinished UTF-8 sequence.
				end := len(text)
				if cut[seq] >= 0 {
					end = cut[seq]
				} else {
					end -= holdBack(text, opt.Stops)
				}
				if end > streamed {
					opt.OnText(text[streamed:end])
					streamed = end
				}
			}
			return cut[seq] < 0
		},
	})
	if err != nil {
		return nil, err
	}
	for i := range texts {
		texts[i] = decode(i, gen[i])
		if cut[i] >= 0 {
			texts[i] = texts[i][:cut[i]]
		}
	}
	if opt.OnText != nil && len(prompts) == 1 && len(texts[0]) > streamed {
		opt.OnText(texts[0][streamed:])
	}
	return texts, nil
}

// holdBack is how many trailing bytes of text may still turn into a stop
// string or complete a UTF-8 character.
func holdBack(text string, stops []string) int {
	n := 0
	for _, s := range stops {
		for k := len(s) - 1; k > 0; k-- {
			if strings.HasSuffix(text, s[:k]) {
				n = max(n, k)
				break
			}
		}
	}
	// An incomplete UTF-8 sequence at the end (replacement char from a
	// partial byte-fallback sequence).
	if strings.HasSuffix(text, "\uFFFD") {
		n = max(n, len("\uFFFD"))
	}
	return n
}
