package model

import (
	"encoding/binary"
	"errors"
	"fmt"
	"math"

	"github.com/salr-go/salr/model/safetensors"
)

// llama2cHeaderFields are the seven int32 values that open a llama2.c
// (legacy, version 0) checkpoint, in file order.
var llama2cHeaderFields = [...]string{"dim", "hidden_dim", "n_layers", "n_heads", "n_kv_heads", "vocab_size", "seq_len"}

// llama2cMagic opens llama2.c's later export formats (versions 1 and 2),
// which this loader does not read: "ak42" as a little-endian uint32.
const llama2cMagic = 0x616b3432

// LoadLlama2C reads a llama2.c checkpoint (the legacy format of
// karpathy/llama2.c's run.c: seven int32 header fields, then float32
// arrays; a negative vocab_size means an untied classifier stored after the
// RoPE tables). The file is memory-mapped; tensors come back under
// HuggingFace names and in HuggingFace layout: the rows of wq and wk are
// permuted from llama2.c's interleaved rotary pairs to HuggingFace's
// half-split pairs, as transformers' convert_llama_weights_to_hf does.
// The configuration is model_type llama, rms_norm_eps 1e-5, rope_theta 10000,
// max_position_embeddings = seq_len, BOS 1, EOS 2. The file must end where
// the header says it does, and every weight must be finite.
func LoadLlama2C(path string) (*Checkpoint, error) {
	m, err := safetensors.MapFile(path)
	if err != nil {
		return nil, err
	}
	ck, err := parseLlama2C(m.Data, path)
	if err != nil {
		m.Close()
		return nil, err
	}
	ck.release = m.Close
	return ck, nil
}

// parseLlama2C decodes a llama2.c checkpoint held in data (name is used in
// errors). Most tensors are views of data.
func parseLlama2C(data []byte, name string) (*Checkpoint, error) {
	cfg, err := parseLlama2CHeader(data, name)
	if err != nil {
		return nil, err
	}
	r := llama2cReader{data: data, off: 4 * len(llama2cHeaderFields), name: name}
	dim, hidden, layers, kvDim := cfg.Hidden, cfg.Intermediate, cfg.Layers, cfg.KVDim()
	ck := &Checkpoint{Config: cfg, Tensors: map[string]*Tensor{}, Source: name}

	// put stores a [layers, rows, cols] array as one tensor per layer; the
	// rows of the attention heads' rotary pairs are permuted when heads > 0.
	put := func(field, suffix string, rows, cols, heads int) error {
		stacked, err := r.next(field, layers, rows, cols)
		per := rows * cols
		var nf *safetensors.NonFiniteError
		if errors.As(err, &nf) {
			layer, i := nf.Index/per, nf.Index%per
			if heads > 0 {
				i = rotaryRow(i/cols, cfg.HeadDim)*cols + i%cols
			}
			return fmt.Errorf("%s: tensor %q (llama2.c %s, layer %d): %v", name, LayerTensorName(layer, suffix), field, layer, &safetensors.NonFiniteError{Index: i, Value: nf.Value})
		}
		if err != nil {
			return err
		}
		for i := 0; i < layers; i++ {
			w := stacked[i*per : (i+1)*per : (i+1)*per]
			if heads > 0 {
				w = permuteRotaryRows(w, heads, cfg.HeadDim, cols)
			}
			shape := []int{rows, cols}
			if cols == 1 {
				shape = []int{rows}
			}
			ck.Tensors[LayerTensorName(i, suffix)] = &Tensor{Shape: shape, Data: w}
		}
		return nil
	}
	// single reads an array that is one tensor.
	single := func(field, tensor string, shape ...int) error {
		rows, cols := shape[0], 1
		if len(shape) == 2 {
			cols = shape[1]
		}
		v, err := r.next(field, 1, rows, cols)
		var nf *safetensors.NonFiniteError
		if errors.As(err, &nf) {
			return fmt.Errorf("%s: tensor %q (llama2.c %s): %v", name, tensor, field, nf)
		}
		if err != nil {
			return err
		}
		ck.Tensors[tensor] = &Tensor{Shape: shape, Data: v}
		return nil
	}

	if err := single("token_embedding_table", EmbedTokensName, cfg.Vocab, dim); err != nil {
		return nil, err
	}
	steps := []struct {
		field, suffix     string
		rows, cols, heads int // heads: permute the rows of that many rotary heads
	}{
		{"rms_att_weight", "input_layernorm.weight", dim, 1, 0},
		{"wq", "self_attn.q_proj.weight", dim, dim, cfg.Heads},
		{"wk", "self_attn.k_proj.weight", kvDim, dim, cfg.KVHeads},
		{"wv", "self_attn.v_proj.weight", kvDim, dim, 0},
		{"wo", "self_attn.o_proj.weight", dim, dim, 0},
		{"rms_ffn_weight", "post_attention_layernorm.weight", dim, 1, 0},
		{"w1", "mlp.gate_proj.weight", hidden, dim, 0},
		{"w2", "mlp.down_proj.weight", dim, hidden, 0},
		{"w3", "mlp.up_proj.weight", hidden, dim, 0},
	}
	for _, s := range steps {
		if err := put(s.field, s.suffix, s.rows, s.cols, s.heads); err != nil {
			return nil, err
		}
	}
	if err := single("rms_final_weight", FinalNormName, dim); err != nil {
		return nil, err
	}
	// Two legacy RoPE tables (seq_len * head_size/2 floats each), unused.
	for _, table := range []string{"freq_cis_real", "freq_cis_imag"} {
		if err := r.skip(table, cfg.MaxPositions, cfg.HeadDim/2); err != nil {
			return nil, err
		}
	}
	if !cfg.TieEmbeddings {
		if err := single("wcls", LMHeadName, cfg.Vocab, dim); err != nil {
			return nil, err
		}
	}
	if extra := len(data) - r.off; extra != 0 {
		return nil, fmt.Errorf("%s: %d bytes follow the last array the header implies (n_layers %d, dim %d, hidden_dim %d, vocab_size %d): the header does not describe this file", name, extra, layers, dim, hidden, cfg.Vocab)
	}
	if err := checkCheckpointTensors(ck); err != nil {
		panic("model: llama2.c loader built an inconsistent checkpoint: " + err.Error())
	}
	return ck, nil
}

// parseLlama2CHeader reads and checks the seven header fields and derives
// the configuration.
func parseLlama2CHeader(data []byte, name string) (Config, error) {
	headerBytes := 4 * len(llama2cHeaderFields)
	if len(data) >= 4 && binary.LittleEndian.Uint32(data) == llama2cMagic {
		version := -1
		if len(data) >= 8 {
			version = int(int32(binary.LittleEndian.Uint32(data[4:])))
		}
		return Config{}, fmt.Errorf("%s: llama2.c export format version %d is not supported; export with the legacy format (version 0)", name, version)
	}
	if len(data) < headerBytes {
		return Config{}, fmt.Errorf("%s: file truncated in the header: %d bytes, the llama2.c header needs %d", name, len(data), headerBytes)
	}
	var h [len(llama2cHeaderFields)]int
	for i := range h {
		h[i] = int(int32(binary.LittleEndian.Uint32(data[4*i:])))
		if h[i] <= 0 && llama2cHeaderFields[i] != "vocab_size" {
			return Config{}, fmt.Errorf("%s: header field %s is %d, want a positive value", name, llama2cHeaderFields[i], h[i])
		}
	}
	dim, hidden, layers, heads, kvHeads, vocab, seqLen := h[0], h[1], h[2], h[3], h[4], h[5], h[6]
	switch {
	case vocab == 0:
		return Config{}, fmt.Errorf("%s: header field vocab_size is 0", name)
	case dim%heads != 0:
		return Config{}, fmt.Errorf("%s: header: n_heads %d does not divide dim %d", name, heads, dim)
	case heads%kvHeads != 0:
		return Config{}, fmt.Errorf("%s: header: n_kv_heads %d does not divide n_heads %d", name, kvHeads, heads)
	case (dim/heads)%2 != 0:
		return Config{}, fmt.Errorf("%s: header: head size %d (dim/n_heads) is odd; rotary embeddings need pairs", name, dim/heads)
	}
	cfg := Config{
		ModelType:     "llama",
		Hidden:        dim,
		Intermediate:  hidden,
		Layers:        layers,
		Heads:         heads,
		KVHeads:       kvHeads,
		HeadDim:       dim / heads,
		Vocab:         max(vocab, -vocab),
		MaxPositions:  seqLen,
		RMSNormEps:    1e-5,
		RopeTheta:     10000,
		TieEmbeddings: vocab > 0,
		BOSTokenID:    1,
		EOSTokenIDs:   []int{2},
		TorchDtype:    "float32",
	}
	if err := cfg.Validate(); err != nil {
		return Config{}, fmt.Errorf("%s: header: %w", name, err)
	}
	return cfg, nil
}

// llama2cReader walks the float32 arrays of a llama2.c file.
type llama2cReader struct {
	data []byte
	off  int
	name string
}

// next returns the following count1*count2*count3 float32 values (a view of
// the file when aligned), naming field when the file is too short. A NaN or
// infinite value is a *safetensors.NonFiniteError.
func (r *llama2cReader) next(field string, count1, count2, count3 int) ([]float32, error) {
	n, err := r.advance(field, count1, count2, count3)
	if err != nil {
		return nil, err
	}
	return safetensors.Float32FromBytes(r.data[r.off-n:r.off], safetensors.F32)
}

// skip passes over count1*count2 float32 values the model does not use.
func (r *llama2cReader) skip(field string, count1, count2 int) error {
	_, err := r.advance(field, 1, count1, count2)
	return err
}

// advance moves past count1*count2*count3 float32 values and returns their
// size in bytes, naming field when the file is too short.
func (r *llama2cReader) advance(field string, count1, count2, count3 int) (int, error) {
	left := len(r.data) - r.off
	need := 4.0 * float64(count1) * float64(count2) * float64(count3) // exact below 2^53, and any larger value exceeds the file
	if need > float64(left) {
		return 0, fmt.Errorf("%s: file truncated while reading %s: it needs %.0f bytes at offset %d, but only %d remain", r.name, field, need, r.off, left)
	}
	n := int(math.Round(need))
	r.off += n
	return n, nil
}

// permuteRotaryRows returns the rows of a [heads*headDim, cols] projection
// reordered from the interleaved rotary layout of llama2.c and Meta's
// checkpoints, where each head rotates row pairs (2i, 2i+1), to HuggingFace's
// half-split layout, where it rotates (i, i+headDim/2): row h*headDim+2i+j
// moves to h*headDim + j*headDim/2 + i. This is transformers'
// permute(w) = w.view(heads, headDim/2, 2, cols).transpose(1, 2).reshape(heads*headDim, cols).
func permuteRotaryRows[T any](w []T, heads, headDim, cols int) []T {
	if len(w) != heads*headDim*cols || headDim%2 != 0 {
		panic(fmt.Sprintf("model: permuteRotaryRows: %d values for %d heads x %d x %d", len(w), heads, headDim, cols))
	}
	out := make([]T, len(w))
	for row := 0; row < heads*headDim; row++ {
		dst := rotaryRow(row, headDim) * cols
		copy(out[dst:dst+cols], w[row*cols:(row+1)*cols])
	}
	return out
}

// InterleaveRotaryRows is the inverse of permuteRotaryRows: it returns the
// rows of a [heads*headDim, cols] projection in HuggingFace's half-split
// rotary layout reordered to the interleaved one, which GGML's llama RoPE
// rotates and llama.cpp's GGUF converter writes for q and k.
func InterleaveRotaryRows[T any](w []T, heads, headDim, cols int) []T {
	if len(w) != heads*headDim*cols || headDim%2 != 0 {
		panic(fmt.Sprintf("model: InterleaveRotaryRows: %d values for %d heads x %d x %d", len(w), heads, headDim, cols))
	}
	out := make([]T, len(w))
	for row := 0; row < heads*headDim; row++ {
		src := rotaryRow(row, headDim) * cols
		copy(out[row*cols:(row+1)*cols], w[src:src+cols])
	}
	return out
}

// rotaryRow is where permuteRotaryRows moves row: h*headDim+2i+j goes to
// h*headDim + j*headDim/2 + i.
func rotaryRow(row, headDim int) int {
	h, i, j := row/headDim, row%headDim/2, row%2
	return h*headDim + j*headDim/2 + i
}
