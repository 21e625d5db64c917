package model

import (
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"runtime"
	"sync"

	"github.com/salr-go/salr/internal/atomicfile"
	"github.com/salr-go/salr/model/safetensors"
)

// RandomHFOptions are the settings of WriteRandomHF.
type RandomHFOptions struct {
	DType safetensors.DType // F32, BF16 or F16
	Seed  uint64
	// MaxShardSize bounds the tensor bytes of one weight file (see
	// safetensors.PlanShards); 0 writes a single model.safetensors.
	MaxShardSize int64
	// Workers is the number of tensors generated at once (0: GOMAXPROCS).
	Workers int
	// Progress, when set, is called after each tensor is written with the
	// tensor bytes written so far and in all.
	Progress func(written, total int64)
}

// RandomHFResult is what WriteRandomHF wrote.
type RandomHFResult struct {
	WeightFiles []string // the safetensors files, in order
	TensorBytes int64    // the tensor data in them (the index's total_size)
	Bytes       int64    // every file written: weights, index, config.json
}

// WriteRandomHF writes an HF model directory of cfg into dir (created if
// needed; one that already holds a model is refused) whose tensors are
// those of RandomCheckpoint(cfg, opts.Seed) rounded to opts.DType:
// config.json (torch_dtype matching) and model.safetensors, or, when the
// tensors exceed opts.MaxShardSize, shards named and filled in the order
// transformers uses with model.safetensors.index.json. Tensors are
// generated on opts.Workers goroutines and streamed to disk: at most
// Workers+2 of them are in memory at once, never the whole model. Each file
// is written atomically; cancelling ctx stops the writing with ctx's error,
// leaving the files completed so far.
func WriteRandomHF(ctx context.Context, dir string, cfg Config, opts RandomHFOptions) (RandomHFResult, error) {
	switch opts.DType {
	case safetensors.F32, safetensors.BF16, safetensors.F16:
	default:
		return RandomHFResult{}, fmt.Errorf("model: random checkpoint: dtype %q is not one of F32, BF16, F16", opts.DType)
	}
	cfg.TorchDtype = opts.DType.TorchName()
	configJSON, err := cfg.MarshalHF() // validates cfg
	if err != nil {
		return RandomHFResult{}, fmt.Errorf("model: random checkpoint: %w", err)
	}
	if _, err := existingModelFiles(dir, false); err != nil {
		return RandomHFResult{}, err
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return RandomHFResult{}, err
	}
	shapes := cfg.TensorShapes()
	var infos []safetensors.TensorInfo
	for _, name := range stateDictOrder(cfg) {
		infos = append(infos, safetensors.TensorInfo{Name: name, DType: opts.DType, Shape: shapes[name]})
	}
	shards := safetensors.PlanShards(infos, opts.MaxShardSize)
	var res RandomHFResult
	var layouts []*safetensors.Layout
	var order []safetensors.TensorInfo
	weightMap := map[string]string{}
	for i, shard := range shards {
		l, err := safetensors.NewLayout(shard, nil)
		if err != nil {
			return RandomHFResult{}, err
		}
		file := safetensors.SingleFileName
		if len(shards) > 1 {
			file = safetensors.ShardFileName(i+1, len(shards))
		}
		for _, t := range shard {
			weightMap[t.Name] = file
		}
		layouts = append(layouts, l)
		order = append(order, l.Order()...)
		res.WeightFiles = append(res.WeightFiles, file)
		res.TensorBytes += l.DataSize()
		res.Bytes += l.FileSize()
	}

	workers := opts.Workers
	if workers <= 0 {
		workers = runtime.GOMAXPROCS(0)
	}
	gen := generateRandomTensors(ctx, order, opts.Seed, opts.DType, workers)
	defer gen.stop()
	var written int64
	for i, l := range layouts {
		err := safetensors.WriteStream(filepath.Join(dir, res.WeightFiles[i]), l, func(t safetensors.TensorInfo, w io.Writer) error {
			data, err := gen.next(ctx)
			if err != nil {
				return err
			}
			if _, err := w.Write(data); err != nil {
				return err
			}
			written += int64(len(data))
			if opts.Progress != nil {
				opts.Progress(written, res.TensorBytes)
			}
			return nil
		})
		if err != nil {
			return RandomHFResult{}, err
		}
	}
	if len(shards) > 1 {
		index := filepath.Join(dir, safetensors.IndexFileName)
		if err := safetensors.WriteIndex(index, weightMap, res.TensorBytes); err != nil {
			return RandomHFResult{}, err
		}
		st, err := os.Stat(index)
		if err != nil {
			return RandomHFResult{}, err
		}
		res.Bytes += st.Size()
	}
	if err := atomicfile.WriteBytes(filepath.Join(dir, HFConfigFileName), configJSON); err != nil {
		return RandomHFResult{}, err
	}
	res.Bytes += int64(len(configJSON))
	return res, nil
}

// stateDictOrder lists cfg's tensors in the order of a transformers model's
// state_dict, the order save_pretrained fills shards in: the embedding, each
// layer's attention, MLP and norms, the final norm, the head.
func stateDictOrder(cfg Config) []string {
	names := []string{EmbedTokensName}
	for l := 0; l < cfg.Layers; l++ {
		for p := QProj; p <= OProj; p++ {
			names = append(names, ModuleName(l, p)+".weight")
			if cfg.AttentionBias && (p == QProj || p == KProj || p == VProj) {
				names = append(names, ModuleName(l, p)+".bias")
			}
		}
		names = append(names, cfg.mlpTensorOrder(l)...)
		names = append(names, LayerTensorName(l, "input_layernorm.weight"), LayerTensorName(l, "post_attention_layernorm.weight"))
	}
	names = append(names, FinalNormName)
	if !cfg.TieEmbeddings {
		names = append(names, LMHeadName)
	}
	return names
}

// randomTensors generates the tensors of a list, in its order, on worker
// goroutines, holding at most workers+1 finished or unfinished ones ahead of
// the consumer.
type randomTensors struct {
	results []chan randomResult // one per tensor, buffered
	slots   chan struct{}       // a token per tensor dispatched and not yet taken
	taken   int
	cancel  context.CancelFunc
	wg      sync.WaitGroup
}

type randomResult struct {
	data []byte
	err  error
}

func generateRandomTensors(ctx context.Context, order []safetensors.TensorInfo, seed uint64, dtype safetensors.DType, workers int) *randomTensors {
	ctx, cancel := context.WithCancel(ctx)
	g := &randomTensors{results: make([]chan randomResult, len(order)), slots: make(chan struct{}, workers+1), cancel: cancel}
	for i := range g.results {
		g.results[i] = make(chan randomResult, 1)
	}
	work := make(chan int)
	g.wg.Add(1)
	go func() { // dispatch in order, as slots free up
		defer g.wg.Done()
		defer close(work)
		for i := range order {
			select {
			case g.slots <- struct{}{}:
			case <-ctx.Done():
				return
			}
			select {
			case work <- i:
			case <-ctx.Done():
				return
			}
		}
	}()
	for range workers {
		g.wg.Add(1)
		go func() {
			defer g.wg.Done()
			for i := range work {
				data, err := randomTensorBytes(ctx, order[i], seed, dtype)
				g.results[i] <- randomResult{data, err}
			}
		}()
	}
	return g
}

// next returns the bytes of the next tensor of the list.
func (g *randomTensors) next(ctx context.Context) ([]byte, error) {
	if g.taken >= len(g.results) {
		return nil, fmt.Errorf("model: random checkpoint: more tensors asked for than planned")
	}
	ch := g.results[g.taken]
	g.taken++
	select {
	case r := <-ch:
		<-g.slots
		return r.data, r.err
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

// stop cancels the generation and waits for the goroutines to end.
func (g *randomTensors) stop() {
	g.cancel()
	g.wg.Wait()
}

// randomTensorBytes is RandomTensor(t.Name, t.Shape, seed) encoded in dtype,
// produced a slice at a time (the float32 values are never all in memory).
func randomTensorBytes(ctx context.Context, t safetensors.TensorInfo, seed uint64, dtype safetensors.DType) ([]byte, error) {
	stream := newRandomStream(t.Name, t.Shape, seed)
	n := int(t.Bytes()) / dtype.Size()
	out := make([]byte, 0, t.Bytes())
	chunk := make([]float32, min(n, 1<<16))
	for done := 0; done < n; done += len(chunk) {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		chunk = chunk[:min(len(chunk), n-done)]
		stream.fill(chunk)
		var err error
		if out, err = safetensors.AppendFloat32(out, chunk, dtype); err != nil {
			return nil, err
		}
	}
	return out, nil
}
