package model

import (
	"bytes"
	"context"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/salr-go/salr/model/safetensors"
)

// checkRandomDir checks that every tensor of the model directory dir holds
// RandomTensor's values for seed, rounded to dtype, and that Load reads it.
func checkRandomDir(t *testing.T, dir string, cfg Config, seed uint64, dtype safetensors.DType) {
	t.Helper()
	set, err := safetensors.OpenDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	defer set.Close()
	shapes := cfg.TensorShapes()
	if got := set.Names(); len(got) != len(shapes) {
		t.Fatalf("%d tensors, want %d", len(got), len(shapes))
	}
	for name, shape := range shapes {
		info, ok := set.Info(name)
		if !ok || info.DType != dtype || !slices.Equal(info.Shape, shape) {
			t.Fatalf("%s: %+v, want %s %v", name, info, dtype, shape)
		}
		got, err := set.Bytes(name)
		if err != nil {
			t.Fatal(err)
		}
		want, _ := safetensors.EncodeFloat32(RandomTensor(name, shape, seed), dtype)
		if !bytes.Equal(got, want) {
			t.Fatalf("%s differs from RandomTensor rounded to %s", name, dtype)
		}
	}
	loaded, err := LoadConfig(dir)
	if err != nil {
		t.Fatal(err)
	}
	if loaded.TorchDtype != dtype.TorchName() || loaded.Vocab != cfg.Vocab || loaded.Layers != cfg.Layers {
		t.Errorf("config.json: %+v", loaded)
	}
	ck, err := Load(dir)
	if err != nil {
		t.Fatal(err)
	}
	ck.Close()
}

func TestWriteRandomHFSingleFile(t *testing.T) {
	cfg, _ := NamedShape("llama-64x2")
	cfg.Vocab = 96
	dir := filepath.Join(t.TempDir(), "m")
	var calls int
	var last [2]int64
	res, err := WriteRandomHF(context.Background(), dir, cfg, RandomHFOptions{DType: safetensors.BF16, Seed: 7, MaxShardSize: 1 << 30,
		Progress: func(w, total int64) { calls++; last = [2]int64{w, total} }})
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(res.WeightFiles, []string{safetensors.SingleFileName}) {
		t.Errorf("files %v", res.WeightFiles)
	}
	if calls != len(cfg.TensorShapes()) || last[0] != last[1] || last[1] != res.TensorBytes {
		t.Errorf("progress: %d calls, last %v; %d tensors of %d bytes", calls, last, len(cfg.TensorShapes()), res.TensorBytes)
	}
	checkRandomDir(t, dir, cfg, 7, safetensors.BF16)
	st, _ := os.Stat(filepath.Join(dir, safetensors.SingleFileName))
	cj, _ := os.Stat(filepath.Join(dir, HFConfigFileName))
	if res.Bytes != st.Size()+cj.Size() {
		t.Errorf("Bytes %d, files hold %d", res.Bytes, st.Size()+cj.Size())
	}
	if _, err := WriteRandomHF(context.Background(), dir, cfg, RandomHFOptions{DType: safetensors.BF16}); err == nil || !strings.Contains(err.Error(), "already holds a model") {
		t.Errorf("second write into %s: %v", dir, err)
	}
}

// TestWriteRandomHFSharded: shards in state_dict order, each at most the
// limit unless one tensor exceeds it, with an index Load accepts.
func TestWriteRandomHFSharded(t *testing.T) {
	cfg, _ := NamedShape("llama-64x2")
	cfg.Vocab = 96
	dir := t.TempDir()
	const limit = 40000 // bytes: a few projections per shard
	res, err := WriteRandomHF(context.Background(), dir, cfg, RandomHFOptions{DType: safetensors.F16, Seed: 3, MaxShardSize: limit, Workers: 3})
	if err != nil {
		t.Fatal(err)
	}
	n := len(res.WeightFiles)
	if n < 3 {
		t.Fatalf("%d shards, want several", n)
	}
	weightMap, err := safetensors.ReadIndex(filepath.Join(dir, safetensors.IndexFileName))
	if err != nil {
		t.Fatal(err)
	}
	order := stateDictOrder(cfg)
	shardOf := func(name string) string { return weightMap[name] }
	if shardOf(order[0]) != safetensors.ShardFileName(1, n) || shardOf(order[len(order)-1]) != safetensors.ShardFileName(n, n) {
		t.Errorf("first tensor in %s, last in %s", shardOf(order[0]), shardOf(order[len(order)-1]))
	}
	for i := 1; i < len(order); i++ {
		if shardOf(order[i]) < shardOf(order[i-1]) {
			t.Errorf("%s (%s) comes after %s (%s)", order[i], shardOf(order[i]), order[i-1], shardOf(order[i-1]))
		}
	}
	for i, file := range res.WeightFiles {
		if file != safetensors.ShardFileName(i+1, n) {
			t.Errorf("shard %d is %s", i, file)
		}
		f, err := safetensors.Open(filepath.Join(dir, file))
		if err != nil {
			t.Fatal(err)
		}
		var size int64
		for _, name := range f.Names() {
			info, _ := f.Info(name)
			size += info.End - info.Begin
		}
		if size > limit && len(f.Names()) > 1 {
			t.Errorf("%s holds %d bytes of %d tensors, over the limit %d", file, size, len(f.Names()), limit)
		}
		f.Close()
	}
	checkRandomDir(t, dir, cfg, 3, safetensors.F16)
}

func TestWriteRandomHFQwen2Biases(t *testing.T) {
	cfg, _ := NamedShape("qwen2-7b")
	cfg.Hidden, cfg.Heads, cfg.KVHeads, cfg.HeadDim, cfg.Intermediate, cfg.Layers, cfg.Vocab = 64, 4, 2, 16, 96, 1, 80
	dir := t.TempDir()
	if _, err := WriteRandomHF(context.Background(), dir, cfg, RandomHFOptions{DType: safetensors.F32, Seed: 1}); err != nil {
		t.Fatal(err)
	}
	checkRandomDir(t, dir, cfg, 1, safetensors.F32)
}

func TestWriteRandomHFCancelled(t *testing.T) {
	cfg, _ := NamedShape("llama-64x2")
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	dir := t.TempDir()
	_, err := WriteRandomHF(ctx, dir, cfg, RandomHFOptions{DType: safetensors.BF16})
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("error %v, want context.Canceled", err)
	}
	if entries, _ := os.ReadDir(dir); len(entries) != 0 {
		t.Errorf("a cancelled write left %d entries, e.g. %s", len(entries), entries[0].Name())
	}
}

func TestStateDictOrderCoversTheTensors(t *testing.T) {
	for _, name := range []string{"llama-64x2", "qwen2-7b"} {
		cfg, _ := NamedShape(name)
		order := stateDictOrder(cfg)
		shapes := cfg.TensorShapes()
		seen := map[string]bool{}
		for _, n := range order {
			if _, ok := shapes[n]; !ok || seen[n] {
				t.Errorf("%s: %s unknown or repeated", name, n)
			}
			seen[n] = true
		}
		if len(seen) != len(shapes) {
			t.Errorf("%s: %d names for %d tensors", name, len(seen), len(shapes))
		}
	}
}

// TestNamedShapesArePublishedConfigs spot-checks the published shapes
// against their config.json values and parameter counts.
func TestNamedShapesArePublishedConfigs(t *testing.T) {
	params := func(c Config) int64 {
		var n int64
		for _, s := range c.TensorShapes() {
			p := int64(1)
			for _, d := range s {
				p *= int64(d)
			}
			n += p
		}
		return n
	}
	for _, c := range []struct {
		name                                       string
		hidden, layers, heads, kv, ff, vocab, maxP int
		theta                                      float64
		params                                     int64 // as the model cards count them
	}{
		{"llama2-7b", 4096, 32, 32, 32, 11008, 32000, 4096, 10000, 6738415616},
		{"llama2-13b", 5120, 40, 40, 40, 13824, 32000, 4096, 10000, 13015864320},
		{"mistral-7b", 4096, 32, 32, 8, 14336, 32000, 32768, 1e6, 7241732096},
		{"llama3-8b", 4096, 32, 32, 8, 14336, 128256, 8192, 500000, 8030261248},
		{"qwen2-7b", 3584, 28, 28, 4, 18944, 152064, 131072, 1e6, 7615616512},
	} {
		cfg, err := NamedShape(c.name)
		if err != nil {
			t.Fatal(err)
		}
		if err := cfg.Validate(); err != nil {
			t.Errorf("%s: %v", c.name, err)
		}
		got := []int{cfg.Hidden, cfg.Layers, cfg.Heads, cfg.KVHeads, cfg.Intermediate, cfg.Vocab, cfg.MaxPositions}
		if want := []int{c.hidden, c.layers, c.heads, c.kv, c.ff, c.vocab, c.maxP}; !slices.Equal(got, want) || cfg.RopeTheta != c.theta {
			t.Errorf("%s: %v theta %v, want %v theta %v", c.name, got, cfg.RopeTheta, want, c.theta)
		}
		if p := params(cfg); p != c.params {
			t.Errorf("%s: %d parameters, want %d", c.name, p, c.params)
		}
	}
	_, err := NamedShape("llama2-70b")
	if err == nil || !strings.Contains(err.Error(), "llama2-7b") || !strings.Contains(err.Error(), "qwen2-7b") {
		t.Errorf("unknown shape: %v", err)
	}
	// Callers may change what they get without changing the table.
	a, _ := NamedShape("llama3-8b")
	a.EOSTokenIDs[0] = 5
	if b, _ := NamedShape("llama3-8b"); b.EOSTokenIDs[0] != 128001 {
		t.Errorf("NamedShape shares its EOS list")
	}
}
