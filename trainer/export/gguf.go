package export

import (
	"fmt"
	"io"
	"strings"

	"github.com/salr-go/salr/model"
	"github.com/salr-go/salr/model/gguf"
	"github.com/salr-go/salr/model/tokenizer"
)

// ggufTypes maps Options.DType to the GGUF type of the 2-D weights.
var ggufTypes = map[string]gguf.TensorType{DTypeF32: gguf.F32, DTypeF16: gguf.F16, DTypeBF16: gguf.BF16, DTypeQ8_0: gguf.Q8_0}

// fileTypes maps Options.DType to llama.cpp's general.file_type (llama_ftype:
// ALL_F32, MOSTLY_F16, MOSTLY_Q8_0, MOSTLY_BF16).
var fileTypes = map[string]uint32{DTypeF32: 0, DTypeF16: 1, DTypeQ8_0: 7, DTypeBF16: 32}

// GGUFName is llama.cpp's name of the HF tensor hf of a llama model, e.g.
// "model.layers.3.self_attn.q_proj.weight" -> "blk.3.attn_q.weight".
func GGUFName(hf string) (string, error) {
	if name := model.GGUFTensorName(hf); name != "" {
		return name, nil
	}
	return "", fmt.Errorf("export: tensor %q has no GGUF name", hf)
}

// checkGGUFConfig refuses a model llama.cpp's llama architecture would run
// differently.
func checkGGUFConfig(cfg model.Config) error {
	switch {
	case cfg.ModelType != "llama" && cfg.ModelType != "mistral":
		return fmt.Errorf("export: model_type %q: the GGUF export writes the llama architecture (llama and mistral models)", cfg.ModelType)
	case cfg.RopeScaling != nil && cfg.RopeScaling.Type != "" && cfg.RopeScaling.Type != "default":
		return fmt.Errorf("export: rope_scaling %q is not written to GGUF yet", cfg.RopeScaling.Type)
	case cfg.HeadDim%2 != 0:
		return fmt.Errorf("export: head_dim %d is odd", cfg.HeadDim)
	}
	return nil
}

// writeGGUF writes l, merged, as a llama GGUF file at path, with the chat
// template of srcDir's tokenizer_config.json when it has one.
func writeGGUF(path string, l *model.Loaded, srcDir, name string, o Options) error {
	cfg := l.Params.Config
	if err := checkGGUFConfig(cfg); err != nil {
		return err
	}
	tensors, err := mergedTensors(l.Params)
	if err != nil {
		return err
	}
	kvs := modelMetadata(cfg, name, fileTypes[o.DType])
	tokKVs, err := tokenizerMetadata(l.Tokenizer, cfg.Vocab)
	if err != nil {
		return err
	}
	kvs = append(kvs, tokKVs...)
	template, err := model.ChatTemplate(srcDir)
	if err != nil {
		return err
	}
	if template != "" {
		kvs = append(kvs, gguf.KV{Key: "tokenizer.chat_template", Value: template})
	}
	byName := map[string]tensor{}
	var infos []gguf.TensorInfo
	for _, t := range tensors {
		gname, err := GGUFName(t.name)
		if err != nil {
			return err
		}
		byName[gname] = t
		infos = append(infos, gguf.TensorInfo{Name: gname, Dims: ggmlDims(t.shape), Type: tensorType(t.shape, ggufTypes[o.DType])})
	}
	layout, err := gguf.NewLayout(kvs, infos)
	if err != nil {
		return fmt.Errorf("export: %w", err)
	}
	var buf []byte
	return layout.WriteFile(path, o.Overwrite, func(ti gguf.TensorInfo, w io.Writer) error {
		t := byName[ti.Name]
		values, err := t.values()
		if err != nil {
			return err
		}
		switch t.proj {
		case model.QProj:
			values = PermuteRoPERows(values, t.shape[0], len(values)/t.shape[0], cfg.Heads)
		case model.KProj:
			values = PermuteRoPERows(values, t.shape[0], len(values)/t.shape[0], cfg.KVHeads)
		}
		if buf, err = gguf.AppendTensorData(buf[:0], values, ti.Type); err != nil {
			return err
		}
		_, err = w.Write(buf)
		return err
	})
}

// ggmlDims reverses a PyTorch shape into GGML order (row length first).
func ggmlDims(shape []int) []uint64 {
	dims := make([]uint64, len(shape))
	for i, d := range shape {
		dims[len(shape)-1-i] = uint64(d)
	}
	return dims
}

// tensorType is the GGUF type of a tensor of the given PyTorch shape when
// the weights are to be stored as want: vectors (norms, biases) stay F32, as
// llama.cpp's converter keeps them, and a matrix whose rows are not whole
// Q8_0 blocks falls back to F16, as that converter does.
func tensorType(shape []int, want gguf.TensorType) gguf.TensorType {
	if len(shape) < 2 {
		return gguf.F32
	}
	if _, ok := want.RowBytes(uint64(shape[len(shape)-1])); !ok {
		return gguf.F16
	}
	return want
}

// PermuteRoPERows reorders the rows of a query or key projection w (rows ×
// cols, heads heads of rows/heads rows each) from the half-split RoPE order
// of HF checkpoints, where row i of a head of size D pairs with row i+D/2, to
// the interleaved order GGML's llama RoPE rotates, where row 2i pairs with
// 2i+1: row h·D + 2i + j of the result is row h·D + j·D/2 + i of w. It is
// llama.cpp's converter's reshape (heads, 2, D/2, cols) with the two middle
// axes swapped. A vector (a bias) is a matrix of one column.
func PermuteRoPERows(w []float32, rows, cols, heads int) []float32 {
	return model.InterleaveRotaryRows(w, heads, rows/heads, cols)
}

// modelMetadata are the general.* and llama.* keys llama.cpp's loader reads.
// The context length of a model with sliding-window attention (mistral) is
// capped at the window: llama.cpp's llama architecture attends to the whole
// context, which gives the same results only that far.
func modelMetadata(cfg model.Config, name string, fileType uint32) []gguf.KV {
	ctx := cfg.MaxPositions
	if cfg.SlidingWindow > 0 && cfg.SlidingWindow < ctx {
		ctx = cfg.SlidingWindow
	}
	return []gguf.KV{
		{Key: "general.architecture", Value: "llama"},
		{Key: "general.name", Value: name},
		{Key: "general.file_type", Value: fileType},
		{Key: gguf.AlignmentKey, Value: uint32(gguf.DefaultAlignment)},
		{Key: "llama.vocab_size", Value: uint32(cfg.Vocab)},
		{Key: "llama.context_length", Value: uint32(ctx)},
		{Key: "llama.embedding_length", Value: uint32(cfg.Hidden)},
		{Key: "llama.block_count", Value: uint32(cfg.Layers)},
		{Key: "llama.feed_forward_length", Value: uint32(cfg.Intermediate)},
		{Key: "llama.rope.dimension_count", Value: uint32(cfg.HeadDim)},
		{Key: "llama.rope.freq_base", Value: float32(cfg.RopeTheta)},
		{Key: "llama.attention.head_count", Value: uint32(cfg.Heads)},
		{Key: "llama.attention.head_count_kv", Value: uint32(cfg.KVHeads)},
		{Key: "llama.attention.key_length", Value: uint32(cfg.HeadDim)},
		{Key: "llama.attention.value_length", Value: uint32(cfg.HeadDim)},
		{Key: "llama.attention.layer_norm_rms_epsilon", Value: float32(cfg.RMSNormEps)},
	}
}

// GGUF token types (llama_token_type).
const (
	tokenNormal  int32 = 1
	tokenUnknown int32 = 2
	tokenControl int32 = 3
	tokenUnused  int32 = 5
	tokenByte    int32 = 6
)

// pieceTokenTypes maps the tokenizer's piece types to GGUF token types.
var pieceTokenTypes = map[tokenizer.PieceType]int32{tokenizer.PieceNormal: tokenNormal,
	tokenizer.PieceUnknown: tokenUnknown, tokenizer.PieceControl: tokenControl, tokenizer.PieceByte: tokenByte}

// preTokenizers names the byte-level split patterns llama.cpp knows by the
// names its converter writes as tokenizer.ggml.pre.
var preTokenizers = map[string]string{
	`'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+`:                                          "gpt-2",
	`(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+`: "llama-bpe",
	`(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+`:      "qwen2",
}

// tokenizerMetadata are the tokenizer.ggml.* keys of tok, its vocabulary
// padded to vocab entries with unused "[PADi]" tokens as llama.cpp's
// converter pads it.
func tokenizerMetadata(tok tokenizer.Tokenizer, vocab int) ([]gguf.KV, error) {
	var v tokenizer.Vocabulary
	var kvs []gguf.KV
	switch t := tok.(type) {
	case *tokenizer.SentencePiece:
		v = t.Vocabulary()
		kvs = append(kvs, gguf.KV{Key: "tokenizer.ggml.model", Value: "llama"})
	case *tokenizer.ByteLevelBPE:
		v = t.Vocabulary()
		pre := "default"
		if len(v.SplitPatterns) > 1 {
			return nil, fmt.Errorf("export: a byte-level tokenizer with %d split patterns has no GGUF pre-tokenizer name", len(v.SplitPatterns))
		}
		if len(v.SplitPatterns) == 1 {
			name, ok := preTokenizers[v.SplitPatterns[0]]
			if !ok {
				return nil, fmt.Errorf("export: the tokenizer's split pattern %q is none llama.cpp knows by name (gpt-2, llama-bpe, qwen2)", v.SplitPatterns[0])
			}
			pre = name
		}
		kvs = append(kvs, gguf.KV{Key: "tokenizer.ggml.model", Value: "gpt2"}, gguf.KV{Key: "tokenizer.ggml.pre", Value: pre})
	default:
		return nil, fmt.Errorf("export: a %T tokenizer cannot be written to GGUF (SentencePiece and byte-level BPE can)", tok)
	}
	if len(v.Pieces) > vocab {
		return nil, fmt.Errorf("export: the tokenizer has %d tokens, the model's vocabulary %d", len(v.Pieces), vocab)
	}
	tokens := append([]string(nil), v.Pieces...)
	types := make([]int32, len(tokens), vocab)
	unk := -1
	for i, pt := range v.Types {
		types[i] = pieceTokenTypes[pt]
		if pt == tokenizer.PieceUnknown && unk < 0 {
			unk = i
		}
	}
	for i := len(tokens); i < vocab; i++ {
		tokens = append(tokens, fmt.Sprintf("[PAD%d]", i))
		types = append(types, tokenUnused)
	}
	kvs = append(kvs, gguf.KV{Key: "tokenizer.ggml.tokens", Value: tokens})
	if v.Scores != nil {
		scores := append(append([]float32(nil), v.Scores...), make([]float32, vocab-len(v.Scores))...)
		kvs = append(kvs, gguf.KV{Key: "tokenizer.ggml.scores", Value: scores})
	}
	kvs = append(kvs, gguf.KV{Key: "tokenizer.ggml.token_type", Value: types})
	if _, ok := tok.(*tokenizer.ByteLevelBPE); ok {
		merges := make([]string, len(v.Merges))
		for i, m := range v.Merges {
			if strings.Contains(m[0], " ") || strings.Contains(m[1], " ") {
				return nil, fmt.Errorf("export: merge %d (%q, %q) has a space, which GGUF's \"left right\" merges cannot hold", i, m[0], m[1])
			}
			merges[i] = m[0] + " " + m[1]
		}
		kvs = append(kvs, gguf.KV{Key: "tokenizer.ggml.merges", Value: merges})
	}
	if bos := tok.BOS(); bos >= 0 {
		kvs = append(kvs, gguf.KV{Key: "tokenizer.ggml.bos_token_id", Value: uint32(bos)})
	}
	if eos := tok.EOS(); eos >= 0 {
		kvs = append(kvs, gguf.KV{Key: "tokenizer.ggml.eos_token_id", Value: uint32(eos)})
	}
	if unk >= 0 {
		kvs = append(kvs, gguf.KV{Key: "tokenizer.ggml.unknown_token_id", Value: uint32(unk)})
	}
	kvs = append(kvs, gguf.KV{Key: "tokenizer.ggml.add_bos_token", Value: tok.AddBOS()},
		gguf.KV{Key: "tokenizer.ggml.add_eos_token", Value: false})
	return kvs, nil
}
