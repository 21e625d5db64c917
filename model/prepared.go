package model

import (
	"encoding/json"
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"slices"

	"github.com/salr-go/salr/model/safetensors"
)

// A prepared base (written by salr-prepare) is a compressed model directory
// whose model.safetensors also carries, under the metadata entry
// "salr_prepared",
//
//	{"version": 1, "settings": <the settings that made it, free-form JSON>,
//	 "factors": {M: {"rank": r, "scale": s}, ...}}
//
// and, for each module M listed in "factors", the initial factors of its SVD
// residual adapter, ΔW = s · B A:
//
//	M.svd_init.A  F32 [r, in]
//	M.svd_init.B  F32 [out, r]
//
// Unlike the "salr_adapters" adapters, these factors are not attached to the
// projections when the model is loaded: they are the starting value of a
// trainable adapter, which the trainer reads from Checkpoint.Prepared.
const (
	PreparedMetadataKey = "salr_prepared"
	PreparedASuffix     = ".svd_init.A"
	PreparedBSuffix     = ".svd_init.B"

	preparedVersion = 1
)

// Prepared is what a prepared base stores besides the model.
type Prepared struct {
	// Settings is the JSON of the settings that made the base, kept as
	// written (the trainer defines and checks it).
	Settings json.RawMessage
	// Factors holds the initial SVD residual adapter of each module that has
	// one, by HF module name.
	Factors map[string]*PreparedFactors
}

// PreparedFactors is one module's initial adapter: ΔW = Scale · B A with A
// Rank×In and B Out×Rank, row-major float32.
type PreparedFactors struct {
	Rank  int
	A, B  []float32
	Scale float32
}

// preparedMeta is the JSON of the salr_prepared metadata entry.
type preparedMeta struct {
	Version  int                            `json:"version"`
	Settings json.RawMessage                `json:"settings"`
	Factors  map[string]preparedFactorsMeta `json:"factors"`
}

type preparedFactorsMeta struct {
	Rank  int     `json:"rank"`
	Scale float32 `json:"scale"`
}

// preparedEntries are the tensors and the salr_prepared metadata of pr for
// the model p.
func preparedEntries(p *Params[float32], pr *Prepared) ([]safetensors.Tensor, string, error) {
	if !json.Valid(pr.Settings) {
		return nil, "", fmt.Errorf("model: WriteParams: the prepared settings are not valid JSON")
	}
	shapes := p.Config.TensorShapes()
	meta := preparedMeta{Version: preparedVersion, Settings: pr.Settings, Factors: map[string]preparedFactorsMeta{}}
	var tensors []safetensors.Tensor
	for _, module := range slices.Sorted(maps.Keys(pr.Factors)) {
		f := pr.Factors[module]
		shape, ok := shapes[module+".weight"]
		if !ok || len(shape) != 2 {
			return nil, "", fmt.Errorf("model: WriteParams: prepared factors of %s, which is not a projection of this model", module)
		}
		out, in := shape[0], shape[1]
		if f.Rank <= 0 || len(f.A) != f.Rank*in || len(f.B) != out*f.Rank {
			return nil, "", fmt.Errorf("model: WriteParams: prepared factors of %s: rank %d with %d and %d values do not fit %d×%d", module, f.Rank, len(f.A), len(f.B), out, in)
		}
		tensors = append(tensors,
			safetensors.Tensor{Name: module + PreparedASuffix, DType: safetensors.F32, Shape: []int{f.Rank, in}, Data: safetensors.Float32View(f.A)},
			safetensors.Tensor{Name: module + PreparedBSuffix, DType: safetensors.F32, Shape: []int{out, f.Rank}, Data: safetensors.Float32View(f.B)})
		meta.Factors[module] = preparedFactorsMeta{Rank: f.Rank, Scale: f.Scale}
	}
	b, err := json.Marshal(meta)
	return tensors, string(b), err
}

// ReadPreparedSettings returns the settings of the prepared base at path
// from the header of its model.safetensors alone (no weights are read), or
// nil when path is not a prepared base.
func ReadPreparedSettings(path string) (json.RawMessage, error) {
	if st, err := os.Stat(path); err != nil || !st.IsDir() {
		return nil, nil
	}
	file := filepath.Join(path, safetensors.SingleFileName)
	f, err := safetensors.Open(file)
	if err != nil {
		return nil, nil // not one readable file, so not a prepared base; Load reports what is wrong
	}
	defer f.Close()
	raw, ok := f.Metadata()[PreparedMetadataKey]
	if !ok {
		return nil, nil
	}
	var meta preparedMeta
	if err := json.Unmarshal([]byte(raw), &meta); err != nil {
		return nil, fmt.Errorf("%s: metadata %q: %v", file, PreparedMetadataKey, err)
	}
	if len(meta.Settings) == 0 {
		return nil, fmt.Errorf("%s: metadata %q has no settings", file, PreparedMetadataKey)
	}
	return meta.Settings, nil
}

// prepared reads the salr_prepared metadata raw and the factors it lists.
func (c compressedFile) prepared(raw string, cfg Config) (*Prepared, error) {
	var meta preparedMeta
	if err := json.Unmarshal([]byte(raw), &meta); err != nil {
		return nil, fmt.Errorf("%s: metadata %q: %v", c.path, PreparedMetadataKey, err)
	}
	if meta.Version != preparedVersion {
		return nil, fmt.Errorf("%s: metadata %q: version %d; this build reads version %d", c.path, PreparedMetadataKey, meta.Version, preparedVersion)
	}
	if len(meta.Settings) == 0 {
		return nil, fmt.Errorf("%s: metadata %q has no settings", c.path, PreparedMetadataKey)
	}
	shapes := cfg.TensorShapes()
	projections := projectionWeights(cfg)
	out := &Prepared{Settings: meta.Settings, Factors: make(map[string]*PreparedFactors, len(meta.Factors))}
	for _, module := range slices.Sorted(maps.Keys(meta.Factors)) {
		fm := meta.Factors[module]
		if !projections[module+".weight"] {
			return nil, fmt.Errorf("%s: metadata %q lists %q, which is not a projection of this model", c.path, PreparedMetadataKey, module)
		}
		rows, cols := shapes[module+".weight"][0], shapes[module+".weight"][1]
		if fm.Rank <= 0 || fm.Rank > min(rows, cols) {
			return nil, fmt.Errorf("%s: metadata %q: the factors of %s have rank %d, outside [1, %d]", c.path, PreparedMetadataKey, module, fm.Rank, min(rows, cols))
		}
		f := &PreparedFactors{Rank: fm.Rank, Scale: fm.Scale}
		var err error
		if f.A, err = c.float32Copy(module+PreparedASuffix, fm.Rank, cols); err != nil {
			return nil, err
		}
		if f.B, err = c.float32Copy(module+PreparedBSuffix, rows, fm.Rank); err != nil {
			return nil, err
		}
		out.Factors[module] = f
	}
	return out, nil
}

// float32Copy returns a copy of the F32 tensor name after checking its
// dtype and shape, and releases the mapped pages it was copied from (read
// once, they would otherwise stay resident for the whole run).
func (c compressedFile) float32Copy(name string, shape ...int) ([]float32, error) {
	v, err := view[float32](c, name, safetensors.F32, shape...)
	if err != nil {
		return nil, err
	}
	out := slices.Clone(v)
	if c.mapped {
		info, _ := c.f.Info(name)
		safetensors.ReleasePages(c.raw[c.dataStart+int(info.Begin) : c.dataStart+int(info.End)])
	}
	return out, nil
}
