// Package tokenizer turns text into token ids and back for the models SALR fine-tunes.
//
// Three implementations sit behind the Tokenizer interface:
//
//   - SentencePiece: SentencePiece-style BPE with byte fallback (Llama-2, Mistral, TinyLlama,
//     the llama2.c stories models), written here because sugarme/tokenizer lacks byte
//     fallback. It loads from a llama2.c tok*.bin (merge priority = piece score) or from an
//     HF tokenizer.json whose model is BPE with byte_fallback true (merge priority = merge
//     rank), and can write the HF form back (WriteHF).
//   - ByteLevelBPE: HF byte-level BPE (GPT-2, Llama-3, Qwen2), also written here because
//     sugarme/tokenizer v0.3.0 encodes these files differently from HF (see ByteLevelBPE).
//   - HFTokenizer: any other HF tokenizer.json (WordPiece, WordLevel, Unigram, BPE without a
//     byte-level pre-tokenizer), run by github.com/sugarme/tokenizer with its panics turned
//     into errors and its added-token handling replaced.
//
// Both BPE implementations share one merge loop, a heap of adjacent pairs over a linked list
// (O(n log n) in the text length). Load picks the implementation from the file. Encode never adds BOS/EOS: callers prepend
// BOS() when AddBOS() is true. Decode skips special tokens (BOS, EOS, unk, pad, ...).
package tokenizer

import (
	"bufio"
	"fmt"
	"io"
	"os"
	"path/filepath"

	"github.com/salr-go/salr/model/gguf"
)

// Tokenizer turns text into token ids and back.
type Tokenizer interface {
	// Encode returns the ids of text without any special tokens added.
	Encode(text string) ([]int, error)
	// Decode returns the text of ids; special/control tokens (BOS, EOS, pad, unk) are skipped
	// and ids outside the vocabulary are ignored.
	Decode(ids []int) string
	// BOS returns the beginning-of-sequence id, or -1 when the vocabulary has none.
	BOS() int
	// EOS returns the end-of-sequence id, or -1 when the vocabulary has none.
	EOS() int
	// AddBOS reports whether model inputs start with BOS (llama/mistral: yes; gpt2/qwen2: no).
	AddBOS() bool
	// VocabSize returns the number of ids (the largest id plus one).
	VocabSize() int
}

// File names inside an HF tokenizer directory.
const (
	hfTokenizerFile = "tokenizer.json"
	hfConfigFile    = "tokenizer_config.json"
)

// Load reads a tokenizer from path, which is one of:
//   - a directory holding tokenizer.json (and optionally tokenizer_config.json),
//   - a tokenizer.json file (a tokenizer_config.json beside it is read when present),
//   - a llama2.c tokenizer file such as tok512.bin,
//   - a llama.cpp GGUF model file (by its .gguf suffix), whose tokenizer.ggml.* metadata
//     holds the tokenizer (LoadGGUF).
//
// A tokenizer.json whose model is BPE with byte_fallback true loads as *SentencePiece; other
// tokenizer.json files load as *HFTokenizer.
func Load(path string) (Tokenizer, error) {
	info, err := os.Stat(path)
	if err != nil {
		return nil, fmt.Errorf("tokenizer: %w", err)
	}
	if info.IsDir() {
		jsonPath := filepath.Join(path, hfTokenizerFile)
		if _, err := os.Stat(jsonPath); err != nil {
			return nil, fmt.Errorf("tokenizer: directory %s holds no %s: %w", path, hfTokenizerFile, err)
		}
		return loadHF(jsonPath)
	}
	if gguf.HasExtension(path) {
		return LoadGGUF(path)
	}
	isJSON, err := looksLikeJSON(path)
	if err != nil {
		return nil, err
	}
	if isJSON {
		return loadHF(path)
	}
	return LoadLlama2C(path)
}

// IsLlama2C reports whether Load reads path as a llama2.c tokenizer file.
// Such a file does not store its vocabulary size, so one cut between two
// records loads as a smaller vocabulary: callers compare VocabSize with the
// model's.
func IsLlama2C(path string) (bool, error) {
	info, err := os.Stat(path)
	if err != nil {
		return false, fmt.Errorf("tokenizer: %w", err)
	}
	if info.IsDir() || gguf.HasExtension(path) {
		return false, nil
	}
	isJSON, err := looksLikeJSON(path)
	return !isJSON, err
}

// looksLikeJSON reports whether the first non-blank byte of the file is '{'.
func looksLikeJSON(path string) (bool, error) {
	f, err := os.Open(path)
	if err != nil {
		return false, fmt.Errorf("tokenizer: %w", err)
	}
	defer f.Close()
	r := bufio.NewReader(f)
	for {
		b, err := r.ReadByte()
		if err == io.EOF {
			return false, nil // empty: not JSON; the llama2.c loader reports the truncation
		}
		if err != nil {
			return false, fmt.Errorf("tokenizer: %w", err)
		}
		switch b {
		case ' ', '\t', '\r', '\n':
			continue
		case '{':
			return true, nil
		default:
			return false, nil
		}
	}
}
