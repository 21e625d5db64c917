package adapters

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"iter"
	"maps"
	"math"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"

	"github.com/salr-go/salr/internal/atomicfile"
	"github.com/salr-go/salr/model/safetensors"
)

// File names of a PEFT adapter directory.
const (
	PEFTConfigFile  = "adapter_config.json"
	PEFTWeightsFile = "adapter_model.safetensors"
)

// peftKeyPrefix prefixes HF module names in PEFT tensor keys
// (PeftModel wraps the CausalLM, which wraps the decoder "model").
const peftKeyPrefix = "base_model.model."

// PEFTConfig is the adapter_config.json of a PEFT LoRA adapter (the fields
// SALR writes and reads; other fields of foreign files are ignored).
type PEFTConfig struct {
	PeftType      string   `json:"peft_type"`
	TaskType      string   `json:"task_type"`
	R             int      `json:"r"`
	LoraAlpha     float64  `json:"lora_alpha"`
	LoraDropout   float64  `json:"lora_dropout"`
	TargetModules []string `json:"target_modules"`
	// ModulesToSave lists, by short name, the modules trained in full
	// whose weights the adapter holds (omitted when none).
	ModulesToSave       []string `json:"modules_to_save,omitempty"`
	Bias                string   `json:"bias"`
	BaseModelNameOrPath string   `json:"base_model_name_or_path"`
	FanInFanOut         bool     `json:"fan_in_fan_out"`
	InferenceMode       bool     `json:"inference_mode"`
	UseRSLoRA           bool     `json:"use_rslora"`
	// RankPattern and AlphaPattern override r and lora_alpha for the modules
	// whose name matches a key (PEFT: re.match(r"(.*\.)?KEY$", module)).
	RankPattern  map[string]int     `json:"rank_pattern"`
	AlphaPattern map[string]float64 `json:"alpha_pattern"`
	// SALR records how the exported LoRA was built from SALR's adapters.
	SALR *SALRExportInfo `json:"salr,omitempty"`
}

// SALRExportInfo is the "salr" object of an exported adapter_config.json.
type SALRExportInfo struct {
	Format string `json:"format"`
	Note   string `json:"note"`
	// Parts lists, per HF module name, the original adapters in rank order.
	Parts map[string][]PEFTPart `json:"parts"`
}

// PEFTPart describes one of SALR's adapters inside an exported LoRA.
type PEFTPart struct {
	Kind      string  `json:"kind"`
	Rank      int     `json:"rank"`
	Scale     float32 `json:"scale"`
	Dropout   float64 `json:"dropout"`
	Trainable bool    `json:"trainable"`
}

const (
	salrExportFormat = "salr-peft-lora-v1"
	salrExportNote   = "SALR's adapters of each projection (LoRA, then the SVD residual adapter) are exported as one " +
		"LoRA of rank r_lora + r_svd: lora_A = [A_lora; A_svd], lora_B = [s_lora*B_lora, B_svd] with every scale folded " +
		"into lora_B, and lora_alpha = r (per module through alpha_pattern when ranks differ), so PEFT's " +
		"W + (lora_alpha/r)*B@A adds exactly the sum of SALR's adapters. Apply it to the pruned base W0*M " +
		"(base_model_name_or_path), not to the dense original: the SVD adapter approximates the pruned-away residual. " +
		"lora_dropout is 0 because the folded adapter mixes LoRA and SVD ranks; the original dropout is in parts."
)

// PEFTSaved is a module trained in full that a PEFT adapter holds (PEFT's
// modules_to_save): its HF module name and dense float32 weight [out, in].
type PEFTSaved struct {
	Module string
	Shape  []int
	Weight []float32
}

// WritePEFT writes adapters (keyed by HF module name, e.g.
// "model.layers.0.self_attn.q_proj") as a PEFT LoRA directory: dir/
// adapter_config.json and dir/adapter_model.safetensors (F32) with keys
// base_model.model.{module}.lora_A.weight [r, in] and .lora_B.weight [out, r].
// Each Fused adapter becomes one LoRA of rank Fused.Rank with A = A_cat,
// B = B_cat·diag(scale) and lora_alpha = r, so the PEFT scale is 1 and the
// update equals the sum of the adapters exactly. baseModel goes to
// base_model_name_or_path: it should name the pruned base. The saved modules
// go in as PEFT saves modules_to_save: key base_model.model.{module}.weight
// (PEFT's modules_to_save.default. part removed), their short names listed
// in modules_to_save. Both files are written atomically.
func WritePEFT(dir string, mods map[string]*Fused, baseModel string, saved ...PEFTSaved) error {
	if len(mods) == 0 {
		return fmt.Errorf("adapters: WritePEFT %s: no adapters", dir)
	}
	names := slices.Sorted(maps.Keys(mods))
	ranks := map[int]int{}
	targets := map[string]bool{}
	info := &SALRExportInfo{Format: salrExportFormat, Note: salrExportNote, Parts: map[string][]PEFTPart{}}
	var tensors []safetensors.Tensor
	for _, name := range names {
		f := mods[name]
		if err := checkModuleName(name); err != nil {
			return fmt.Errorf("adapters: WritePEFT %s: %w", dir, err)
		}
		ranks[f.Rank]++
		targets[name[strings.LastIndexByte(name, '.')+1:]] = true
		for _, p := range f.Parts {
			info.Parts[name] = append(info.Parts[name], PEFTPart{Kind: p.Kind, Rank: p.Rank, Scale: p.Scale, Dropout: p.Dropout, Trainable: p.Trainable})
		}
		tensors = append(tensors,
			safetensors.Tensor{Name: peftKeyPrefix + name + ".lora_A.weight", DType: safetensors.F32, Shape: []int{f.Rank, f.In}, Data: safetensors.Float32View(f.A)},
			safetensors.Tensor{Name: peftKeyPrefix + name + ".lora_B.weight", DType: safetensors.F32, Shape: []int{f.Out, f.Rank}, Data: safetensors.Float32View(f.ScaledB())})
	}
	toSave := map[string]bool{}
	for _, m := range saved {
		if err := checkModuleName(m.Module); err != nil {
			return fmt.Errorf("adapters: WritePEFT %s: %w", dir, err)
		}
		if len(m.Shape) != 2 || m.Shape[0]*m.Shape[1] != len(m.Weight) {
			return fmt.Errorf("adapters: WritePEFT %s: %s has %d values, not %v", dir, m.Module, len(m.Weight), m.Shape)
		}
		toSave[m.Module[strings.LastIndexByte(m.Module, '.')+1:]] = true
		tensors = append(tensors, safetensors.Tensor{Name: peftKeyPrefix + m.Module + ".weight", DType: safetensors.F32, Shape: m.Shape, Data: safetensors.Float32View(m.Weight)})
	}
	// The most common rank is r; other modules get rank and alpha patterns.
	r := 0
	for rank, count := range ranks {
		if count > ranks[r] || (count == ranks[r] && rank < r) {
			r = rank
		}
	}
	cfg := PEFTConfig{PeftType: "LORA", TaskType: "CAUSAL_LM", R: r, LoraAlpha: float64(r),
		TargetModules: slices.Sorted(maps.Keys(targets)), Bias: "none", BaseModelNameOrPath: baseModel,
		InferenceMode: true, RankPattern: map[string]int{}, AlphaPattern: map[string]float64{}, SALR: info}
	if len(toSave) > 0 {
		cfg.ModulesToSave = slices.Sorted(maps.Keys(toSave))
	}
	for _, name := range names {
		if f := mods[name]; f.Rank != r {
			cfg.RankPattern[name] = f.Rank
			cfg.AlphaPattern[name] = float64(f.Rank)
		}
	}
	configJSON, err := json.MarshalIndent(cfg, "", "  ")
	if err != nil {
		return err
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("adapters: WritePEFT: %w", err)
	}
	weights := filepath.Join(dir, PEFTWeightsFile)
	if err := safetensors.Write(weights, tensors, map[string]string{"format": "pt"}); err != nil {
		return fmt.Errorf("adapters: WritePEFT: %w", err)
	}
	return atomicfile.Write(filepath.Join(dir, PEFTConfigFile), func(w io.Writer) error {
		_, err := w.Write(append(configJSON, '\n'))
		return err
	})
}

// checkModuleName accepts an HF module name such as
// "model.layers.0.self_attn.q_proj" (not a tensor name ending in .weight).
func checkModuleName(name string) error {
	if name == "" || strings.HasSuffix(name, ".weight") || strings.HasSuffix(name, ".") || !strings.Contains(name, ".") {
		return fmt.Errorf("%q is not an HF module name like model.layers.0.self_attn.q_proj", name)
	}
	return nil
}

// savedModule reports whether key is the weight of a module listed (by
// short name) in modules_to_save, and returns the module's HF name.
func savedModule(key string, toSave []string) (string, bool) {
	m, ok := strings.CutSuffix(key, ".weight")
	if !ok || strings.HasSuffix(m, ".lora_A") || strings.HasSuffix(m, ".lora_B") {
		return "", false
	}
	m, ok = strings.CutPrefix(m, peftKeyPrefix)
	if !ok || !slices.Contains(toSave, m[strings.LastIndexByte(m, '.')+1:]) {
		return "", false
	}
	return m, true
}

// PEFTAdapters is a PEFT LoRA directory loaded by ReadPEFT.
type PEFTAdapters struct {
	Config PEFTConfig
	// Modules maps HF module names to their adapters. The PEFT scale
	// (lora_alpha/r) is kept as the adapters' Scale; for SALR exports it is 1
	// with the original scales folded into B, and the parts of the "salr"
	// metadata (kinds, ranks, dropout, trainable) are restored with Scale 1.
	Modules map[string]*Fused
	// Saved holds the modules trained in full (modules_to_save), by HF
	// module name; nil when none.
	Saved map[string]PEFTSaved
}

// ReadPEFT loads a PEFT LoRA directory written by WritePEFT (or by PEFT, for
// plain Llama-family LoRA adapters without fan_in_fan_out or biases). The
// forward of the returned adapters equals the exported one exactly; to resume
// SALR training use the native checkpoint, where B is stored unscaled.
func ReadPEFT(dir string) (*PEFTAdapters, error) {
	cfgPath := filepath.Join(dir, PEFTConfigFile)
	raw, err := os.ReadFile(cfgPath)
	if err != nil {
		return nil, err
	}
	var cfg PEFTConfig
	if err := json.Unmarshal(raw, &cfg); err != nil {
		return nil, fmt.Errorf("%s: %v", cfgPath, err)
	}
	if err := cfg.check(); err != nil {
		return nil, fmt.Errorf("%s: %v", cfgPath, err)
	}
	weightsPath := filepath.Join(dir, PEFTWeightsFile)
	st, err := safetensors.Open(weightsPath)
	if err != nil {
		return nil, err
	}
	defer st.Close()
	out := &PEFTAdapters{Config: cfg, Modules: map[string]*Fused{}}
	for _, key := range st.Names() {
		if m, ok := savedModule(key, cfg.ModulesToSave); ok {
			info, _ := st.Info(key)
			w, err := st.Float32(key)
			if err != nil {
				return nil, fmt.Errorf("%s: %v", weightsPath, err)
			}
			if out.Saved == nil {
				out.Saved = map[string]PEFTSaved{}
			}
			out.Saved[m] = PEFTSaved{Module: m, Shape: info.Shape, Weight: slices.Clone(w)} // w is a view of the mapped file
			continue
		}
		module, ok := strings.CutSuffix(key, ".lora_A.weight")
		if !ok {
			if !strings.HasSuffix(key, ".lora_B.weight") {
				return nil, fmt.Errorf("%s: tensor %q is not a lora_A/lora_B weight", weightsPath, key)
			}
			continue // read with its lora_A
		}
		module, ok = strings.CutPrefix(module, peftKeyPrefix)
		if !ok {
			return nil, fmt.Errorf("%s: tensor %q does not start with %q", weightsPath, key, peftKeyPrefix)
		}
		f, err := readModule(st, weightsPath, module, &cfg)
		if err != nil {
			return nil, err
		}
		out.Modules[module] = f
	}
	for _, key := range st.Names() {
		if m, ok := strings.CutSuffix(key, ".lora_B.weight"); ok {
			if _, found := out.Modules[strings.TrimPrefix(m, peftKeyPrefix)]; !found {
				return nil, fmt.Errorf("%s: %q has no matching lora_A", weightsPath, key)
			}
		}
	}
	if len(out.Modules) == 0 {
		return nil, fmt.Errorf("%s: no adapter tensors", weightsPath)
	}
	return out, nil
}

func (c *PEFTConfig) check() error {
	switch {
	case c.PeftType != "LORA":
		return fmt.Errorf("peft_type %q is not supported (want \"LORA\")", c.PeftType)
	case c.FanInFanOut:
		return errors.New("fan_in_fan_out adapters are not supported")
	case c.Bias != "" && c.Bias != "none":
		return fmt.Errorf("bias %q is not supported (want \"none\")", c.Bias)
	case c.R <= 0:
		return fmt.Errorf("r = %d must be positive", c.R)
	case !(c.LoraAlpha > 0):
		return fmt.Errorf("lora_alpha = %g must be positive", c.LoraAlpha)
	}
	for key := range c.RankPattern {
		if _, err := regexp.Compile(key); err != nil {
			return fmt.Errorf("rank_pattern key %q: %v", key, err)
		}
	}
	for key := range c.AlphaPattern {
		if _, err := regexp.Compile(key); err != nil {
			return fmt.Errorf("alpha_pattern key %q: %v", key, err)
		}
	}
	return nil
}

// moduleRankAlpha applies rank_pattern and alpha_pattern as PEFT does: the
// first key (in sorted order) matching "(.*\.)?KEY$" wins.
func (c *PEFTConfig) moduleRankAlpha(module string) (int, float64) {
	r, alpha := c.R, c.LoraAlpha
	if key, ok := matchPattern(maps.Keys(c.RankPattern), module); ok {
		r = c.RankPattern[key]
	}
	if key, ok := matchPattern(maps.Keys(c.AlphaPattern), module); ok {
		alpha = c.AlphaPattern[key]
	}
	return r, alpha
}

func matchPattern(keys iter.Seq[string], module string) (string, bool) {
	for _, key := range slices.Sorted(keys) {
		if regexp.MustCompile(`^(.*\.)?(` + key + `)$`).MatchString(module) {
			return key, true
		}
	}
	return "", false
}

// readModule reads one module's lora_A/lora_B pair.
func readModule(st *safetensors.File, path, module string, cfg *PEFTConfig) (*Fused, error) {
	keyA, keyB := peftKeyPrefix+module+".lora_A.weight", peftKeyPrefix+module+".lora_B.weight"
	infoA, _ := st.Info(keyA)
	infoB, ok := st.Info(keyB)
	if !ok {
		return nil, fmt.Errorf("%s: %q has no matching %q", path, keyA, keyB)
	}
	if len(infoA.Shape) != 2 || len(infoB.Shape) != 2 || infoA.Shape[0] != infoB.Shape[1] || infoA.Shape[0] == 0 {
		return nil, fmt.Errorf("%s: %s: lora_A shape %v and lora_B shape %v do not form [r, in] and [out, r]", path, module, infoA.Shape, infoB.Shape)
	}
	rank, in, out := infoA.Shape[0], infoA.Shape[1], infoB.Shape[0]
	r, alpha := cfg.moduleRankAlpha(module)
	if r != rank {
		return nil, fmt.Errorf("%s: %s: tensors have rank %d but the config says r = %d", path, module, rank, r)
	}
	a, err := st.Float32(keyA)
	if err != nil {
		return nil, err
	}
	b, err := st.Float32(keyB)
	if err != nil {
		return nil, err
	}
	scale := alpha / float64(r)
	if cfg.UseRSLoRA {
		scale = alpha / math.Sqrt(float64(r))
	}
	whole := &Fused{In: in, Out: out, Rank: rank, A: a, B: b}
	var parts []PEFTPart
	if cfg.SALR != nil {
		parts = cfg.SALR.Parts[module]
	}
	if len(parts) == 0 {
		parts = []PEFTPart{{Kind: KindLoRA, Rank: rank, Dropout: cfg.LoraDropout, Trainable: true}}
	}
	offset := 0
	for _, p := range parts {
		if p.Rank <= 0 || offset+p.Rank > rank {
			return nil, fmt.Errorf("%s: %s: the salr parts %+v do not add up to rank %d", path, module, parts, rank)
		}
		whole.Parts = append(whole.Parts, Part{Kind: p.Kind, Offset: offset, Rank: p.Rank, Scale: float32(scale), Dropout: p.Dropout, Trainable: p.Trainable})
		offset += p.Rank
	}
	if offset != rank {
		return nil, fmt.Errorf("%s: %s: the salr parts %+v do not add up to rank %d", path, module, parts, rank)
	}
	// Concat copies the factors out of the mapped file and checks the parts.
	split := make([]*LowRank, len(whole.Parts))
	for i := range split {
		split[i] = whole.Adapter(i)
	}
	f, err := Concat(split...)
	if err != nil {
		return nil, fmt.Errorf("%s: %s: %v", path, module, err)
	}
	return f, nil
}
