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

// EncodePrompt returns the ids of a prompt as the model reads it: BOS first
// when the tokenizer adds one.
func EncodePrompt(tok tokenizer.Tokenizer, prompt string) ([]int, error) {
	enc, err := tok.Encode(prompt)
	if err != nil {
		return nil, err
	}
	if tok.AddBOS() && tok.BOS() >= 0 {
		enc = append([]int{tok.BOS()}, enc...)
	}
	return enc, nil
}

// GenerateText continues each prompt and returns the generated texts.
func GenerateText(r *Runner, tok tokenizer.Tokenizer, prompts []string, opt TextOptions) ([]string, error) {
	ids := make([][]int, len(prompts))
	streams := make([]*TextStream, len(prompts))
	for i, p := range prompts {
		enc, err := EncodePrompt(tok, p)
		if err != nil {
			return nil, fmt.Errorf("model: encoding prompt %d: %w", i, err)
		}
		if len(enc) == 0 {
			return nil, fmt.Errorf("model: prompt %d is empty and the tokenizer adds no BOS", i)
		}
		ids[i] = enc
		streams[i] = NewTextStream(tok, enc, opt.Stops)
	}
	var stopIDs []int
	if tok.EOS() >= 0 {
		stopIDs = append(stopIDs, tok.EOS())
	}
	stream := opt.OnText != nil && len(prompts) == 1
	_, err := r.Generate(ids, GenerateOptions{
		MaxNewTokens: opt.MaxNewTokens,
		Sampler:      opt.Sampler,
		StopIDs:      stopIDs,
		OnToken: func(seq int, generated []int) bool {
			delta, stopped := streams[seq].Push(generated)
			if stream && delta != "" {
				opt.OnText(delta)
			}
			return !stopped
		},
	})
	if err != nil {
		return nil, err
	}
	texts := make([]string, len(prompts))
	for i, s := range streams {
		texts[i] = s.Text()
	}
	if stream {
		if rest := streams[0].Flush(); rest != "" {
			opt.OnText(rest)
		}
	}
	return texts, nil
}

// TextStream turns the tokens generated for one prompt into text as they
// come, for streaming: it cuts the text at the first stop string and holds
// back what may still change (a possible start of a stop string, an
// unfinished UTF-8 character).
type TextStream struct {
	tok        tokenizer.Tokenizer
	prompt     []int
	promptText string
	stops      []string
	text       string // the continuation decoded so far, uncut
	cut        int    // where the first stop string starts, -1 before one is seen
	sent       int    // bytes of text handed out
}

// NewTextStream starts the text of a continuation of prompt (its ids, as fed
// to the model) that ends at the first of stops.
func NewTextStream(tok tokenizer.Tokenizer, prompt []int, stops []string) *TextStream {
	return &TextStream{tok: tok, prompt: prompt, promptText: tok.Decode(prompt), stops: stops, cut: -1}
}

// Push takes all the tokens generated so far and returns the text that has
// become final since the last call, and whether a stop string has ended the
// text (the caller then stops generating).
func (s *TextStream) Push(generated []int) (delta string, stopped bool) {
	// Decoding a continuation on its own would drop a leading space (the
	// SentencePiece dummy prefix), so decode prompt + continuation and cut
	// the decoded prompt off.
	all := s.tok.Decode(append(append(make([]int, 0, len(s.prompt)+len(generated)), s.prompt...), generated...))
	if strings.HasPrefix(all, s.promptText) {
		s.text = all[len(s.promptText):]
	} else {
		s.text = s.tok.Decode(generated)
	}
	for _, stop := range s.stops {
		if k := strings.Index(s.text, stop); k >= 0 && (s.cut < 0 || k < s.cut) {
			s.cut = k
		}
	}
	end := len(s.text)
	if s.cut >= 0 {
		end = s.cut
	} else {
		end -= holdBack(s.text, s.stops)
	}
	if end > s.sent {
		delta = s.text[s.sent:end]
		s.sent = end
	}
	return delta, s.cut >= 0
}

// Text returns the whole text, cut at the first stop string.
func (s *TextStream) Text() string {
	if s.cut >= 0 {
		return s.text[:s.cut]
	}
	return s.text
}

// Flush returns the text not handed out yet, at the end of the generation.
func (s *TextStream) Flush() string {
	t := s.Text()
	if len(t) <= s.sent {
		return ""
	}
	rest := t[s.sent:]
	s.sent = len(t)
	return rest
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
