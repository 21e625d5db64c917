package safetensors

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"sort"
)

// The file names of a HuggingFace model directory's weights.
const (
	SingleFileName = "model.safetensors"
	IndexFileName  = "model.safetensors.index.json"
)

// Open memory-maps the safetensors file at path (see MapFile) and parses it.
// Close the File to unmap it.
func Open(path string) (*File, error) {
	m, err := MapFile(path)
	if err != nil {
		return nil, err
	}
	f, err := Parse(m.Data, path)
	if err != nil {
		m.Close()
		return nil, err
	}
	f.mapping = m
	return f, nil
}

// Set gives one view over the tensors of a model directory, whether they are
// in one model.safetensors or sharded across files listed in
// model.safetensors.index.json. Each shard is opened once.
type Set struct {
	source string           // the index or the single file, for messages
	files  []*File          // in the order of their paths
	owner  map[string]*File // tensor name -> file holding it
	names  []string
}

// OpenDir opens the weights of a HuggingFace model directory: model.safetensors
// when present (as transformers prefers it), otherwise the shards named by
// model.safetensors.index.json. A tensor listed in the index but missing from
// its shard is an error naming both. Tensors present in a shard but not listed
// in the index are ignored.
func OpenDir(dir string) (*Set, error) {
	single := filepath.Join(dir, SingleFileName)
	if _, err := os.Stat(single); err == nil {
		f, err := Open(single)
		if err != nil {
			return nil, err
		}
		s := &Set{source: single, files: []*File{f}, owner: make(map[string]*File, len(f.names)), names: f.Names()}
		for _, n := range f.names {
			s.owner[n] = f
		}
		return s, nil
	}
	index := filepath.Join(dir, IndexFileName)
	data, err := os.ReadFile(index)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("%s: neither %s nor %s found", dir, SingleFileName, IndexFileName)
	}
	if err != nil {
		return nil, err
	}
	weightMap, err := parseIndex(data, index)
	if err != nil {
		return nil, err
	}
	return openShards(dir, index, weightMap)
}

// ReadIndex reads the weight_map of a model.safetensors.index.json: tensor
// name -> shard file name (a plain file name in the index's directory).
func ReadIndex(path string) (map[string]string, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	return parseIndex(data, path)
}

// parseIndex reads the weight_map of a model.safetensors.index.json
// (tensor name -> shard file name) and checks the shard names are plain file
// names inside the directory.
func parseIndex(data []byte, index string) (map[string]string, error) {
	var doc struct {
		WeightMap map[string]string `json:"weight_map"`
	}
	if err := json.Unmarshal(data, &doc); err != nil {
		return nil, fmt.Errorf("%s: %v", index, err)
	}
	if doc.WeightMap == nil {
		return nil, fmt.Errorf("%s: missing \"weight_map\"", index)
	}
	for name, shard := range doc.WeightMap {
		if shard == "" || shard == "." || shard == ".." || filepath.Base(shard) != shard || filepath.IsAbs(shard) {
			return nil, fmt.Errorf("%s: tensor %q: shard %q is not a file name in the model directory", index, name, shard)
		}
	}
	return doc.WeightMap, nil
}

func openShards(dir, index string, weightMap map[string]string) (_ *Set, err error) {
	s := &Set{source: index, owner: make(map[string]*File, len(weightMap))}
	defer func() {
		if err != nil {
			s.Close() // unmap the shards opened so far
		}
	}()
	shardNames := make([]string, 0, len(weightMap))
	for _, shard := range weightMap {
		shardNames = append(shardNames, shard)
	}
	sort.Strings(shardNames)
	shardNames = slices.Compact(shardNames)
	byShard := make(map[string]*File, len(shardNames))
	for _, shard := range shardNames {
		f, err := Open(filepath.Join(dir, shard))
		if err != nil {
			return nil, err
		}
		s.files = append(s.files, f)
		byShard[shard] = f
	}
	for name := range weightMap {
		s.names = append(s.names, name)
	}
	sort.Strings(s.names)
	for _, name := range s.names {
		f := byShard[weightMap[name]]
		if _, ok := f.tensors[name]; !ok {
			return nil, fmt.Errorf("%s lists tensor %q in %s, but that shard has no such tensor", index, name, f.name)
		}
		s.owner[name] = f
	}
	return s, nil
}

// Source is the path the set was opened from: the single model.safetensors
// or the index file.
func (s *Set) Source() string { return s.source }

// Names lists every tensor name, sorted.
func (s *Set) Names() []string { return slices.Clone(s.names) }

// Path names the file holding tensor name ("" when there is no such tensor).
func (s *Set) Path(name string) string {
	if f, ok := s.owner[name]; ok {
		return f.name
	}
	return ""
}

// Info describes the tensor called name.
func (s *Set) Info(name string) (TensorInfo, bool) {
	f, ok := s.owner[name]
	if !ok {
		return TensorInfo{}, false
	}
	return f.Info(name)
}

// Bytes returns a tensor's raw bytes, a view valid until Close.
func (s *Set) Bytes(name string) ([]byte, error) {
	f, ok := s.owner[name]
	if !ok {
		return nil, fmt.Errorf("%s: no tensor %q", s.source, name)
	}
	return f.Bytes(name)
}

// BF16 returns a BF16 tensor's bit patterns, as File.BF16 does.
func (s *Set) BF16(name string) ([]uint16, error) {
	f, ok := s.owner[name]
	if !ok {
		return nil, fmt.Errorf("%s: no tensor %q", s.source, name)
	}
	return f.BF16(name)
}

// Release drops a tensor's mapped pages from resident memory, as
// File.Release does.
func (s *Set) Release(name string) {
	if f, ok := s.owner[name]; ok {
		f.Release(name)
	}
}

// Float32 returns a tensor as float32 values, as File.Float32 does.
func (s *Set) Float32(name string) ([]float32, error) {
	f, ok := s.owner[name]
	if !ok {
		return nil, fmt.Errorf("%s: no tensor %q", s.source, name)
	}
	return f.Float32(name)
}

// Metadata merges the __metadata__ maps of all files; where shards disagree
// on a key, the shard whose path sorts first wins.
func (s *Set) Metadata() map[string]string {
	out := map[string]string{}
	for i := len(s.files) - 1; i >= 0; i-- {
		for k, v := range s.files[i].metadata {
			out[k] = v
		}
	}
	return out
}

// Close unmaps every file; views obtained from the set become invalid.
func (s *Set) Close() error {
	var errs []error
	for _, f := range s.files {
		errs = append(errs, f.Close())
	}
	return errors.Join(errs...)
}
