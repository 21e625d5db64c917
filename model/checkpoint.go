package model

import (
	"errors"
	"fmt"
	"io"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"

	"github.com/salr-go/salr/internal/parallel"
	"github.com/salr-go/salr/kernels"
	"github.com/salr-go/salr/model/gguf"
	"github.com/salr-go/salr/model/safetensors"
)

// Tensor is a tensor in HuggingFace layout: row-major, projections stored
// [out, in]. Its values are float32 in Data or, for a matrix a BF16 file
// stores, the bf16 bit patterns in BF16 (a view of the mapped file, never
// widened as a whole: a 7B model stays 13.5 GB instead of 27). Exactly one of
// the two is set.
type Tensor struct {
	Shape []int
	Data  []float32
	BF16  []uint16
}

// Float32 returns the values as float32: Data itself, or BF16 widened into a
// new slice.
func (t *Tensor) Float32() []float32 {
	if t.BF16 == nil {
		return t.Data
	}
	out := make([]float32, len(t.BF16))
	for i, h := range t.BF16 {
		out[i] = kernels.BF16ToFloat32(h)
	}
	return out
}

// Len is the number of values.
func (t *Tensor) Len() int {
	if t.BF16 != nil {
		return len(t.BF16)
	}
	return len(t.Data)
}

// Checkpoint is a model's configuration and weights under HuggingFace tensor
// names (see Config.TensorShapes) and in HuggingFace layout whatever the
// source format: float32, except the matrices of a BF16 file, which stay bf16
// (see Tensor). When the embeddings are tied, lm_head.weight is not in
// Tensors.
//
// Tensors loaded from F32 files may be views of a memory-mapped file
// (private copy-on-write: writable, never written back), and so are BF16
// matrices (read-only); they are valid until Close.
type Checkpoint struct {
	Config  Config
	Tensors map[string]*Tensor
	// Compressed holds the projection weights a compressed model directory
	// (see WriteParams) stores in bitmap or NF4 form (*bitmap.Matrix,
	// *bitmap.NF4), by tensor name (e.g.
	// "model.layers.0.self_attn.q_proj.weight"); they are not in Tensors.
	// The matrices are views of the memory-mapped file, valid until Close.
	Compressed map[string]kernels.Matrix[float32]
	// Adapters holds the low-rank updates a compressed model directory
	// stores with its weights, by HF module name.
	Adapters map[string]*LowRank[float32]
	// Prepared is set when the directory is a prepared base (salr-prepare):
	// the settings that made it and the initial SVD factors, which are not
	// attached to the projections.
	Prepared *Prepared
	Source   string // the path loaded

	release     func() error      // unmaps the file(s) Tensors may point into
	releaseView func(name string) // drops a BF16 view's pages from memory
}

// Drop removes a tensor the caller no longer needs (a projection once its
// pruned form is stored) and lets its mapped pages leave resident memory.
func (c *Checkpoint) Drop(name string) {
	t, ok := c.Tensors[name]
	if !ok {
		return
	}
	delete(c.Tensors, name)
	if t.BF16 != nil && c.releaseView != nil {
		c.releaseView(name)
	}
}

// HFConfigFileName is the configuration file of a HuggingFace model directory.
const HFConfigFileName = "config.json"

// Load reads a checkpoint: a HuggingFace model directory (config.json plus
// model.safetensors or sharded safetensors), a compressed model directory
// (see WriteParams), a llama.cpp .gguf file (LoadGGUF) or a llama2.c .bin
// file.
func Load(path string) (*Checkpoint, error) {
	isDir, err := modelPathIsDir(path)
	if err != nil {
		return nil, err
	}
	switch {
	case isDir:
		return LoadHF(path)
	case gguf.HasExtension(path):
		return LoadGGUF(path)
	}
	return LoadLlama2C(path)
}

// LoadConfig reads only the configuration of the model Load would read from
// path: the config.json of a model directory, the metadata of a GGUF file
// or the header of a llama2.c file.
func LoadConfig(path string) (Config, error) {
	isDir, err := modelPathIsDir(path)
	if err != nil {
		return Config{}, err
	}
	switch {
	case isDir:
		return LoadHFConfig(filepath.Join(path, HFConfigFileName))
	case gguf.HasExtension(path):
		return LoadGGUFConfig(path)
	}
	f, err := os.Open(path)
	if err != nil {
		return Config{}, err
	}
	defer f.Close()
	header := make([]byte, 4*len(llama2cHeaderFields))
	n, err := io.ReadFull(f, header)
	if err != nil && err != io.ErrUnexpectedEOF && err != io.EOF {
		return Config{}, fmt.Errorf("%s: %w", path, err)
	}
	return parseLlama2CHeader(header[:n], path)
}

// modelPathIsDir tells a model directory from a llama2.c file, and refuses
// a file inside a model directory.
func modelPathIsDir(path string) (bool, error) {
	st, err := os.Stat(path)
	if err != nil {
		return false, err
	}
	if !st.IsDir() && (strings.HasSuffix(path, ".safetensors") || filepath.Base(path) == HFConfigFileName) {
		return false, fmt.Errorf("%s: pass the model directory (holding config.json and the safetensors files), not a file in it", path)
	}
	return st.IsDir(), nil
}

// LoadHF reads a HuggingFace model directory: config.json and the weights
// (model.safetensors or shards listed in model.safetensors.index.json, in
// F32, F16, BF16 or F64). Every tensor Config.TensorShapes names must be
// present with that shape and hold only finite values. Any other tensor is an
// error (a config.json with fewer layers than the weights, say), except those
// transformers ignores too: rotary_emb.inv_freq buffers, and lm_head.weight
// when the embeddings are tied. A compressed model directory (its
// model.safetensors carries the salr_compression metadata) is loaded with its
// bitmap weights in Checkpoint.Compressed and its adapters in
// Checkpoint.Adapters.
func LoadHF(dir string) (*Checkpoint, error) {
	cfg, err := LoadHFConfig(filepath.Join(dir, HFConfigFileName))
	if err != nil {
		return nil, err
	}
	set, err := safetensors.OpenDir(dir)
	if err != nil {
		return nil, err
	}
	if _, compressed := set.Metadata()[CompressionMetadataKey]; compressed {
		if err := set.Close(); err != nil {
			return nil, err
		}
		return loadCompressed(dir, cfg)
	}
	expected := cfg.TensorShapes()
	err = checkTensorSet(expected, set.Source(), func(name string) ([]int, string, bool) {
		info, ok := set.Info(name)
		return info.Shape, set.Path(name), ok
	})
	if err == nil {
		err = checkUnusedTensors(cfg, expected, set.Names(), set.Path)
	}
	if err != nil {
		set.Close()
		return nil, err
	}
	ck := &Checkpoint{Config: cfg, Tensors: make(map[string]*Tensor, len(expected)), Source: dir}
	names := slices.Sorted(maps.Keys(expected))
	tensors := make([]*Tensor, len(names))
	errs := make([]error, len(names))
	// Tensors are converted (and checked for finiteness, in the same pass) in
	// parallel, each by the next idle goroutine. BF16 matrices stay views of
	// the mapped file; the check reads them once, and their pages are then
	// released until a kernel or the pruning pass needs them.
	parallel.ForEach(len(names), 0, func(i int) {
		t := &Tensor{Shape: expected[names[i]]}
		if info, _ := set.Info(names[i]); info.DType == safetensors.BF16 && len(t.Shape) == 2 {
			t.BF16, errs[i] = set.BF16(names[i])
			set.Release(names[i])
		} else {
			t.Data, errs[i] = set.Float32(names[i])
		}
		tensors[i] = t
	})
	for _, err := range errs { // the first in name order
		if err != nil {
			set.Close()
			return nil, err
		}
	}
	aliasesMap := false
	for i, name := range names {
		if info, _ := set.Info(name); info.DType == safetensors.F32 || tensors[i].BF16 != nil {
			aliasesMap = true // possibly a view of the mapped file
		}
		ck.Tensors[name] = tensors[i]
	}
	if aliasesMap {
		ck.release = set.Close
		ck.releaseView = set.Release
	} else if err := set.Close(); err != nil { // everything was converted into fresh memory
		return nil, err
	}
	return ck, nil
}

// Close releases the memory maps behind the tensors; the tensors must not be
// used afterwards. Closing twice does nothing.
func (c *Checkpoint) Close() error {
	if c.release == nil {
		return nil
	}
	err := c.release()
	c.release = nil
	return err
}

// checkTensorSet compares the tensors a source holds with the expected
// names and shapes. lookup returns a tensor's shape and the file holding it.
// A missing tensor is reported against source (the index or main file).
func checkTensorSet(expected map[string][]int, source string, lookup func(name string) (shape []int, file string, ok bool)) error {
	names := make([]string, 0, len(expected))
	for name := range expected {
		names = append(names, name)
	}
	sort.Strings(names)
	var missing []string
	for _, name := range names {
		shape, file, ok := lookup(name)
		if !ok {
			missing = append(missing, name)
			continue
		}
		if !slices.Equal(shape, expected[name]) {
			return fmt.Errorf("%s: tensor %q has shape %v, but the configuration implies %v", file, name, shape, expected[name])
		}
	}
	switch len(missing) {
	case 0:
		return nil
	case 1:
		return fmt.Errorf("%s: missing tensor %q", source, missing[0])
	default:
		return fmt.Errorf("%s: missing tensor %q and %d more", source, missing[0], len(missing)-1)
	}
}

// checkUnusedTensors reports the first (in name order) of names that cfg
// does not use, expected being cfg.TensorShapes(). Ignored, as transformers
// ignores them: rotary_emb.inv_freq buffers, which older checkpoints carry,
// and lm_head.weight when the embeddings are tied. fileOf names the file
// holding a tensor.
func checkUnusedTensors(cfg Config, expected map[string][]int, names []string, fileOf func(name string) string) error {
	slices.Sort(names)
	for _, name := range names {
		_, used := expected[name]
		ignored := strings.HasSuffix(name, ".rotary_emb.inv_freq") || (name == LMHeadName && cfg.TieEmbeddings)
		if !used && !ignored {
			return fmt.Errorf("%s: tensor %q is not part of the model config.json describes (%d layers, tie_word_embeddings %v): wrong config.json for these weights?",
				fileOf(name), name, cfg.Layers, cfg.TieEmbeddings)
		}
	}
	return nil
}

// checkCheckpointTensors verifies that ck holds exactly the tensors its
// configuration implies, with data of the right length.
func checkCheckpointTensors(ck *Checkpoint) error {
	if ck == nil {
		return errors.New("nil checkpoint")
	}
	if err := ck.Config.Validate(); err != nil {
		return fmt.Errorf("%s: %w", ck.Source, err)
	}
	err := checkTensorSet(ck.Config.TensorShapes(), ck.Source, func(name string) ([]int, string, bool) {
		t, ok := ck.Tensors[name]
		if !ok || t == nil {
			return nil, "", false
		}
		return t.Shape, ck.Source, true
	})
	if err != nil {
		return err
	}
	for name, t := range ck.Tensors {
		n := 1
		for _, d := range t.Shape {
			n *= d
		}
		if t.Len() != n {
			return fmt.Errorf("%s: tensor %q has %d values for shape %v", ck.Source, name, t.Len(), t.Shape)
		}
	}
	return nil
}
