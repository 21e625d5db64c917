package export

import (
	"fmt"
	"io"
	"path/filepath"

	"github.com/salr-go/salr/adapters"
	"github.com/salr-go/salr/model"
	"github.com/salr-go/salr/model/gguf"
	"github.com/salr-go/salr/trainer"
)

// loraTensor is one factor of a projection's adapter in a GGUF LoRA file.
type loraTensor struct {
	info   gguf.TensorInfo
	values []float32
}

// writeLoRA writes the trained adapters of runDir as a llama.cpp LoRA
// adapter GGUF at path, for the run's pruned base exported as GGUF (a prune
// run's -format gguf: the same magnitude mask gives the same base). Each
// projection's adapters are one LoRA of rank r (LoRA and SVD factors
// stacked): blk.N.<name>.weight.lora_a holds A (GGML dims [in, r]) and
// lora_b holds B diag(scale) (dims [r, out]), rows of q and k permuted as in
// the model file; adapter.lora.alpha = r makes llama.cpp's scale alpha/r
// equal to 1, so it adds exactly B diag(scale) A.
func writeLoRA(runDir, path string, o Options) error {
	cfg, err := model.LoadHFConfig(filepath.Join(modelDir(runDir), model.HFConfigFileName))
	if err != nil {
		return err
	}
	if err := checkGGUFConfig(cfg); err != nil {
		return err
	}
	adapterPath := filepath.Join(runDir, trainer.AdapterDir, adapters.NativeFile)
	mods, err := adapters.ReadNative(adapterPath)
	if err != nil {
		return fmt.Errorf("export: a LoRA export needs the run's adapters: %w", err)
	}
	want := ggufTypes[o.DType]
	var tensors []loraTensor
	rank, used := 0, 0
	for l := range cfg.Layers {
		for p := model.Projection(0); p < model.NumProjections; p++ {
			module := model.ModuleName(l, p)
			f, ok := mods[module]
			if !ok {
				continue
			}
			used++
			if rank == 0 {
				rank = f.Rank
			}
			if f.Rank != rank {
				return fmt.Errorf("export: %s: adapter of %s has rank %d, others %d; a GGUF LoRA file has one alpha, so all ranks must be equal", adapterPath, module, f.Rank, rank)
			}
			name, err := GGUFName(module + ".weight")
			if err != nil {
				return err
			}
			b := f.ScaledB()
			switch p {
			case model.QProj:
				b = PermuteRoPERows(b, f.Out, f.Rank, cfg.Heads)
			case model.KProj:
				b = PermuteRoPERows(b, f.Out, f.Rank, cfg.KVHeads)
			}
			aShape, bShape := []int{f.Rank, f.In}, []int{f.Out, f.Rank}
			tensors = append(tensors,
				loraTensor{gguf.TensorInfo{Name: name + ".lora_a", Dims: ggmlDims(aShape), Type: tensorType(aShape, want)}, f.A},
				loraTensor{gguf.TensorInfo{Name: name + ".lora_b", Dims: ggmlDims(bShape), Type: tensorType(bShape, want)}, b})
		}
	}
	if used != len(mods) {
		return fmt.Errorf("export: %s: %d adapters name modules a %d-layer model does not have", adapterPath, len(mods)-used, cfg.Layers)
	}
	if used == 0 {
		return fmt.Errorf("export: %s holds no adapters", adapterPath)
	}
	kvs := []gguf.KV{
		{Key: "general.architecture", Value: "llama"},
		{Key: "general.type", Value: "adapter"},
		{Key: "general.name", Value: filepath.Base(filepath.Clean(runDir))},
		{Key: gguf.AlignmentKey, Value: uint32(gguf.DefaultAlignment)},
		{Key: "adapter.type", Value: "lora"},
		{Key: "adapter.lora.alpha", Value: float32(rank)},
	}
	infos := make([]gguf.TensorInfo, len(tensors))
	byName := map[string][]float32{}
	for i, t := range tensors {
		infos[i] = t.info
		byName[t.info.Name] = t.values
	}
	layout, err := gguf.NewLayout(kvs, infos)
	if err != nil {
		return fmt.Errorf("export: %w", err)
	}
	return layout.WriteFile(path, o.Overwrite, func(ti gguf.TensorInfo, w io.Writer) error {
		data, err := gguf.AppendTensorData(nil, byName[ti.Name], ti.Type)
		if err != nil {
			return err
		}
		_, err = w.Write(data)
		return err
	})
}
