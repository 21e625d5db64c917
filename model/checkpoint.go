package model

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"

	"github.com/salr-go/salr/kernels/bitmap"
	"github.com/salr-go/salr/model/safetensors"
)

// Tensor is a float32 tensor in HuggingFace layout: row-major, projections
// stored [out, in].
type Tensor struct {
	Shape []int
	Data  []float32
}

// Checkpoint is a model's configuration and weights, all float32, under
// HuggingFace tensor names (see Config.TensorShapes) and in HuggingFace layout
// whatever the source format. When the embeddings are tied, lm_head.weight is
// not in Tensors.
//
// Tensors loaded from F32 files may be views of a memory-mapped file
// (private copy-on-write: writable, never written back); they are valid until
// Close.
type Checkpoint struct {
	Config  Config
	Tensors map[string]*Tensor
	// Compressed holds the projection weights a compressed model directory
	// (see WriteParams) stores in bitmap form, by tensor name (e.g.
	// "model.layers.0.self_attn.q_proj.weight"); they are not in Tensors.
	// The matrices are views of the memory-mapped file, valid until Close.
	Compressed map[string]*bitmap.Matrix
	// Adapters holds the low-rank updates a compressed model directory
	// stores with its weights, by HF module name.
	Adapters map[string]*LowRank[float32]
	Source   string // the path loaded

	release func() error // unmaps the file(s) Tensors may point into
}

// HFConfigFileName is the configuration file of a HuggingFace model directory.
const HFConfigFileName = "config.json"

// Load reads a checkpoint: a HuggingFace model directory (config.json plus
// model.safetensors or sharded safetensors), a compressed model directory
// (see WriteParams) or a llama2.c .bin file.
func Load(path string) (*Checkpoint, error) {
	st, err := os.Stat(path)
	if err != nil {
		return nil, err
	}
	if st.IsDir() {
		return LoadHF(path)
	}
	if strings.HasSuffix(path, ".safetensors") || filepath.Base(path) == HFConfigFileName {
		return nil, fmt.Errorf("%s: pass the model directory (holding config.json and the safetensors files), not a file in it", path)
	}
	return LoadLlama2C(path)
}

// LoadHF reads a HuggingFace model directory: config.json and the weights
// (model.safetensors or shards listed in model.safetensors.index.json, in
// F32, F16, BF16 or F64). Every tensor Config.TensorShapes names must be
// present with that shape; other tensors (such as rotary_emb.inv_freq, or
// lm_head.weight when the embeddings are tied) are ignored. A compressed
// model directory (its model.safetensors carries the salr_compression
// metadata) is loaded with its bitmap weights in Checkpoint.Compressed and
// its adapters in Checkpoint.Adapters.
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
	if err != nil {
		set.Close()
		return nil, err
	}
	ck := &Checkpoint{Config: cfg, Tensors: make(map[string]*Tensor, len(expected)), Source: dir}
	aliasesMap := false
	for name, shape := range expected {
		data, err := set.Float32(name)
		if err != nil {
			set.Close()
			return nil, err
		}
		if info, _ := set.Info(name); info.DType == safetensors.F32 {
			aliasesMap = true // possibly a view of the mapped file
		}
		ck.Tensors[name] = &Tensor{Shape: shape, Data: data}
	}
	if aliasesMap {
		ck.release = set.Close
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
		if len(t.Data) != n {
			return fmt.Errorf("%s: tensor %q has %d values for shape %v", ck.Source, name, len(t.Data), t.Shape)
		}
	}
	return nil
}
