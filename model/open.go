package model

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"

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

// Open loads a model for inference from an HF model directory or a llama2.c
// .bin file. tokenizerPath may be empty: an HF directory holds its tokenizer;
// beside a llama2.c file the one tok*.bin or tokenizer.bin is used.
func Open(modelPath, tokenizerPath string) (*Loaded, error) {
	if tokenizerPath == "" {
		var err error
		if tokenizerPath, err = DefaultTokenizerPath(modelPath); err != nil {
			return nil, err
		}
	}
	tok, err := tokenizer.Load(tokenizerPath)
	if err != nil {
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
	if tok.VocabSize() > ck.Config.Vocab {
		ck.Close()
		return nil, fmt.Errorf("model: tokenizer %s has %d tokens but the model %s only %d", tokenizerPath, tok.VocabSize(), modelPath, ck.Config.Vocab)
	}
	return &Loaded{Checkpoint: ck, Params: p, Tokenizer: tok}, nil
}

// DefaultTokenizerPath finds the tokenizer that belongs to a model path.
func DefaultTokenizerPath(modelPath string) (string, error) {
	st, err := os.Stat(modelPath)
	if err != nil {
		return "", fmt.Errorf("model: %w", err)
	}
	if st.IsDir() {
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
