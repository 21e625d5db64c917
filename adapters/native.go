package adapters

import (
	"encoding/json"
	"fmt"
	"maps"
	"slices"

	"github.com/salr-go/salr/model/safetensors"
)

// NativeFile is the file name of SALR's own adapter format in a run's
// adapter directory.
const NativeFile = "salr_adapters.safetensors"

// nativePartsKey is the metadata key holding every module's parts as JSON.
const nativePartsKey = "salr_parts"

// WriteNative stores adapters (keyed by HF module name) in SALR's own format,
// which keeps everything needed to continue training or to run inference:
// per module "<module>.A" [Rank, In], "<module>.B" [Out, Rank] (unscaled)
// and "<module>.scale" [Rank], F32, with the parts (kind, rank, scale,
// dropout, trainable) as JSON metadata. Written atomically.
func WriteNative(path string, mods map[string]*Fused) error {
	parts := map[string][]Part{}
	var tensors []safetensors.Tensor
	for _, name := range slices.Sorted(maps.Keys(mods)) {
		f := mods[name]
		parts[name] = f.Parts
		tensors = append(tensors,
			safetensors.Tensor{Name: name + ".A", DType: safetensors.F32, Shape: []int{f.Rank, f.In}, Data: safetensors.Float32View(f.A)},
			safetensors.Tensor{Name: name + ".B", DType: safetensors.F32, Shape: []int{f.Out, f.Rank}, Data: safetensors.Float32View(f.B)},
			safetensors.Tensor{Name: name + ".scale", DType: safetensors.F32, Shape: []int{f.Rank}, Data: safetensors.Float32View(f.Scale)})
	}
	meta, err := json.Marshal(parts)
	if err != nil {
		return err
	}
	return safetensors.Write(path, tensors, map[string]string{nativePartsKey: string(meta)})
}

// ReadNative loads adapters written by WriteNative, checking that every
// module's tensors and parts agree.
func ReadNative(path string) (map[string]*Fused, error) {
	f, err := safetensors.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	var parts map[string][]Part
	if err := json.Unmarshal([]byte(f.Metadata()[nativePartsKey]), &parts); err != nil {
		return nil, fmt.Errorf("adapters: %s: metadata %q: %v", path, nativePartsKey, err)
	}
	out := map[string]*Fused{}
	for name, ps := range parts {
		fu := &Fused{Parts: ps}
		for _, p := range ps {
			if p.Offset != fu.Rank || p.Rank <= 0 {
				return nil, fmt.Errorf("adapters: %s: %s: parts are not contiguous ranks", path, name)
			}
			fu.Rank += p.Rank
		}
		get := func(suffix string, dims int) ([]float32, []int, error) {
			info, ok := f.Info(name + suffix)
			if !ok {
				return nil, nil, fmt.Errorf("adapters: %s: missing tensor %s%s", path, name, suffix)
			}
			if len(info.Shape) != dims {
				return nil, nil, fmt.Errorf("adapters: %s: %s%s has shape %v", path, name, suffix, info.Shape)
			}
			data, err := f.Float32(name + suffix)
			if err != nil {
				return nil, nil, err
			}
			return slices.Clone(data), info.Shape, nil
		}
		var shapeA, shapeB, shapeS []int
		if fu.A, shapeA, err = get(".A", 2); err != nil {
			return nil, err
		}
		if fu.B, shapeB, err = get(".B", 2); err != nil {
			return nil, err
		}
		if fu.Scale, shapeS, err = get(".scale", 1); err != nil {
			return nil, err
		}
		fu.In, fu.Out = shapeA[1], shapeB[0]
		if shapeA[0] != fu.Rank || shapeB[1] != fu.Rank || shapeS[0] != fu.Rank {
			return nil, fmt.Errorf("adapters: %s: %s: tensor shapes %v %v %v disagree with rank %d", path, name, shapeA, shapeB, shapeS, fu.Rank)
		}
		out[name] = fu
	}
	if len(out)*3 != len(f.Names()) {
		return nil, fmt.Errorf("adapters: %s: %d tensors for %d modules", path, len(f.Names()), len(out))
	}
	return out, nil
}
