package model

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/salr-go/salr/model/gguf"
	"github.com/salr-go/salr/model/tokenizer"
)

// Loaded is a model ready for inference: its parameters, its tokenizer and
// the checkpoint that backs the parameters (close it when done).
type Loaded struct {
	Checkpoint *Checkpoint
	Params     *Params[float32]
	Tokenizer  tokenizer.Tokenizer
}

// Close releases the checkpoint's memory maps.
func (l *Loaded) Close() error { return l.Checkpoint.Close() }

// Open loads a model for inference from an HF model directory, a GGUF file
// or a llama2.c .bin file. tokenizerPath may be empty: an HF directory and a
// GGUF file hold their tokenizer; beside a llama2.c file the one tok*.bin or
// tokenizer.bin is used. The tokenizer is checked against the model's
// configuration (CheckTokenizer) before the weights are read.
func Open(modelPath, tokenizerPath string) (*Loaded, error) {
	if tokenizerPath == "" {
		var err error
		if tokenizerPath, err = DefaultTokenizerPath(modelPath); err != nil {
			return nil, err
		}
	}
	cfg, err := LoadConfig(modelPath)
	if err != nil {
		return nil, err
	}
	tok, err := tokenizer.Load(tokenizerPath)
	if err != nil {
		return nil, err
	}
	if err := CheckTokenizer(tok, tokenizerPath, cfg, modelPath); err != nil {
		return nil, err
	}
	ck, err := Load(modelPath)
	if err != nil {
		return nil, err
	}
	p, err := NewParams(ck)
	if err != nil {
		ck.Close()
		return nil, err
	}
	return &Loaded{Checkpoint: ck, Params: p, Tokenizer: tok}, nil
}

// CheckTokenizer reports a tokenizer (read from tokenizerPath) that does not
// fit the model at modelPath, whose configuration is cfg: one with ids the
// model has no embedding for (more tokens than vocab_size) or, when the model
// or the tokenizer is in llama2.c format, fewer tokens than vocab_size.
// HuggingFace models may pad vocab_size beyond their tokenizer; llama2.c
// models do not, and a llama2.c tokenizer file cut between two records loads
// without error as a smaller vocabulary, so only this check catches it.
func CheckTokenizer(tok tokenizer.Tokenizer, tokenizerPath string, cfg Config, modelPath string) error {
	n := tok.VocabSize()
	if n > cfg.Vocab {
		return fmt.Errorf("model: tokenizer %s has %d tokens but the model %s only %d (vocab_size): wrong tokenizer for this model?", tokenizerPath, n, modelPath, cfg.Vocab)
	}
	if n == cfg.Vocab {
		return nil
	}
	llama2cTokenizer, err := tokenizer.IsLlama2C(tokenizerPath)
	if err != nil {
		return err
	}
	st, err := os.Stat(modelPath)
	if err != nil {
		return fmt.Errorf("model: %w", err)
	}
	if llama2cTokenizer || !st.IsDir() && !gguf.HasExtension(modelPath) {
		return fmt.Errorf("model: tokenizer %s has %d tokens but the model %s has %d (vocab_size), and in llama2.c format the two match: truncated tokenizer file, or the wrong one?", tokenizerPath, n, modelPath, cfg.Vocab)
	}
	return nil
}

// DefaultTokenizerPath finds the tokenizer that belongs to a model path:
// the model directory or GGUF file itself, or the one tokenizer file beside
// a llama2.c file.
func DefaultTokenizerPath(modelPath string) (string, error) {
	st, err := os.Stat(modelPath)
	if err != nil {
		return "", fmt.Errorf("model: %w", err)
	}
	if st.IsDir() || gguf.HasExtension(modelPath) {
		return modelPath, nil
	}
	dir := filepath.Dir(modelPath)
	entries, err := os.ReadDir(dir)
	if err != nil {
		return "", fmt.Errorf("model: %w", err)
	}
	var found []string
	for _, e := range entries {
		name := e.Name()
		if name == filepath.Base(modelPath) || e.IsDir() {
			continue
		}
		if name == "tokenizer.bin" || (strings.HasPrefix(name, "tok") && strings.HasSuffix(name, ".bin")) || name == "tokenizer.json" {
			found = append(found, filepath.Join(dir, name))
		}
	}
	if len(found) != 1 {
		return "", fmt.Errorf("model: cannot tell which tokenizer belongs to %s (found %d candidates in %s); pass one explicitly", modelPath, len(found), dir)
	}
	return found[0], nil
}
