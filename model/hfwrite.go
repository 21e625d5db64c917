package model

import (
	"fmt"
	"os"
	"path/filepath"
	"sort"

	"github.com/salr-go/salr/model/safetensors"
)

// WriteOption adjusts WriteHF.
type WriteOption func(*writeHFSettings)

type writeHFSettings struct {
	overwrite bool
}

// ForceOverwrite lets WriteHF replace the model files of a directory that
// already holds a model (config.json, model.safetensors, or a sharded index,
// whose stale index and shards are removed). Other files are left alone.
func ForceOverwrite() WriteOption {
	return func(s *writeHFSettings) { s.overwrite = true }
}

// modelFileNames are the files whose presence means a directory holds a model.
var modelFileNames = []string{HFConfigFileName, safetensors.SingleFileName, safetensors.IndexFileName}

// WriteHF writes ck as a HuggingFace model directory: config.json and one
// model.safetensors with every tensor in dtype (F32, BF16 or F16; the tied
// head is not duplicated), each file written atomically. The directory is
// created if needed. A directory that already holds a model is refused
// unless ForceOverwrite is given; other files in it (a tokenizer, say) are
// fine. config.json's torch_dtype records dtype.
func WriteHF(dir string, ck *Checkpoint, dtype safetensors.DType, opts ...WriteOption) error {
	var settings writeHFSettings
	for _, opt := range opts {
		opt(&settings)
	}
	switch dtype {
	case safetensors.F32, safetensors.BF16, safetensors.F16:
	default:
		return fmt.Errorf("WriteHF: dtype %q is not one of F32, BF16, F16", dtype)
	}
	if err := checkCheckpointTensors(ck); err != nil {
		return fmt.Errorf("WriteHF: %w", err)
	}
	if _, err := existingModelFiles(dir, settings.overwrite); err != nil {
		return err // fail before encoding anything
	}
	names := make([]string, 0, len(ck.Tensors))
	for name := range ck.Config.TensorShapes() {
		names = append(names, name)
	}
	sort.Strings(names)
	tensors := make([]lazyTensor, 0, len(names))
	for _, name := range names {
		t := ck.Tensors[name]
		tensors = append(tensors, lazyTensor{safetensors.TensorInfo{Name: name, DType: dtype, Shape: t.Shape},
			func() ([]byte, error) { return tensorBytes(t, dtype) }})
	}
	return writeModelFiles(dir, ck.Config, dtype, tensors, nil, settings.overwrite)
}

// existingModelFiles refuses a directory that holds a model unless
// overwrite is set, and then returns the files of a sharded model to remove
// after the new one is written (the index last).
func existingModelFiles(dir string, overwrite bool) ([]string, error) {
	for _, name := range modelFileNames {
		path := filepath.Join(dir, name)
		if _, err := os.Stat(path); err == nil && !overwrite {
			return nil, fmt.Errorf("%s already holds a model (%s); refusing to overwrite it without the force option", dir, name)
		}
	}
	index := filepath.Join(dir, safetensors.IndexFileName)
	if _, err := os.Stat(index); err != nil {
		return nil, nil
	}
	weightMap, err := safetensors.ReadIndex(index)
	if err != nil {
		return nil, fmt.Errorf("existing model to overwrite: %w", err)
	}
	var shards []string
	seen := map[string]bool{safetensors.SingleFileName: true}
	for _, shard := range weightMap {
		if !seen[shard] {
			seen[shard] = true
			shards = append(shards, filepath.Join(dir, shard))
		}
	}
	sort.Strings(shards)
	return append(shards, index), nil
}
