package safetensors

import (
	"encoding/json"
	"fmt"
	"strconv"
	"strings"

	"github.com/salr-go/salr/internal/atomicfile"
)

// ShardFileName is the name transformers gives shard i (1-based) of n:
// "model-00001-of-00003.safetensors".
func ShardFileName(i, n int) string {
	return fmt.Sprintf("model-%05d-of-%05d.safetensors", i, n)
}

// PlanShards splits tensors, taken in the order given, into shards of at
// most maxBytes of tensor data each, as transformers' save_pretrained does
// (huggingface_hub's split_state_dict_into_shards): a tensor that would
// overflow the current shard closes it and starts the next one; a tensor
// larger than maxBytes gets a shard of its own, placed before the shard
// being filled, which goes on collecting the tensors after it. maxBytes <= 0
// means one shard.
func PlanShards(tensors []TensorInfo, maxBytes int64) [][]TensorInfo {
	var shards [][]TensorInfo
	var cur []TensorInfo
	var size int64
	for _, t := range tensors {
		b := t.Bytes()
		if maxBytes > 0 && b > maxBytes {
			shards = append(shards, []TensorInfo{t})
			continue
		}
		if maxBytes > 0 && len(cur) > 0 && size+b > maxBytes {
			shards = append(shards, cur)
			cur, size = nil, 0
		}
		cur = append(cur, t)
		size += b
	}
	if len(cur) > 0 || len(shards) == 0 {
		shards = append(shards, cur)
	}
	return shards
}

// indexFile is model.safetensors.index.json as transformers writes it.
type indexFile struct {
	Metadata  indexMetadata     `json:"metadata"`
	WeightMap map[string]string `json:"weight_map"`
}

type indexMetadata struct {
	TotalSize int64 `json:"total_size"`
}

// WriteIndex writes a model.safetensors.index.json at path, atomically:
// metadata.total_size (the bytes of tensor data in all shards, headers not
// counted) and weight_map (tensor name -> shard file name), keys sorted and
// indented by two spaces as transformers writes it.
func WriteIndex(path string, weightMap map[string]string, totalSize int64) error {
	text, err := json.MarshalIndent(indexFile{Metadata: indexMetadata{TotalSize: totalSize}, WeightMap: weightMap}, "", "  ")
	if err != nil {
		return err
	}
	return atomicfile.WriteBytes(path, append(text, '\n'))
}

// ParseSize reads a size in bytes as transformers' max_shard_size takes it:
// an integer, optionally followed by a unit, decimal (KB, MB, GB, TB:
// powers of 1000) or binary (KiB, MiB, GiB, TiB: powers of 1024), in any
// case; e.g. "5GB" is 5·10⁹ bytes. The size must be positive.
func ParseSize(s string) (int64, error) {
	units := []struct {
		suffix string
		scale  int64
	}{
		{"KIB", 1 << 10}, {"MIB", 1 << 20}, {"GIB", 1 << 30}, {"TIB", 1 << 40},
		{"KB", 1e3}, {"MB", 1e6}, {"GB", 1e9}, {"TB", 1e12}, {"B", 1},
	}
	num, scale := strings.TrimSpace(s), int64(1)
	upper := strings.ToUpper(num)
	for _, u := range units {
		if strings.HasSuffix(upper, u.suffix) {
			num, scale = strings.TrimSpace(num[:len(num)-len(u.suffix)]), u.scale
			break
		}
	}
	n, err := strconv.ParseInt(num, 10, 64)
	if err != nil || n <= 0 || n > (1<<62)/scale {
		return 0, fmt.Errorf("size %q: want a positive whole number of bytes, optionally with a unit (KB, MB, GB, TB, KiB, MiB, GiB, TiB), e.g. 5GB", s)
	}
	return n * scale, nil
}
