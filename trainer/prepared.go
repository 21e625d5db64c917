package trainer

import (
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"maps"
	"os"
	"path/filepath"
	"runtime/debug"
	"strconv"
	"strings"

	"github.com/salr-go/salr/adapters"
	"github.com/salr-go/salr/configs"
	"github.com/salr-go/salr/kernels"
	"github.com/salr-go/salr/model"
	"github.com/salr-go/salr/model/safetensors"
	"github.com/salr-go/salr/sparsity"
)

// A prepared base is a compressed model directory (model.WriteParams) made
// by WritePrepared: the pruned bases in output.base_format, the initial SVD
// residual adapters, and the settings that made them (preparedSettings, in
// the metadata entry model.PreparedMetadataKey). A run whose model.path names
// one skips pruning and the SVD when its settings match (checkPrepared).

// Method families of a prepared base.
const (
	preparedPrune    = "prune"     // pruned bases only (prune, prune-lora)
	preparedPruneSVD = "prune+svd" // pruned bases and SVD factors (salr, prune-svd)
)

// preparedSettings is the JSON of a prepared base's settings.
type preparedSettings struct {
	// Method is the method family: prune or prune+svd.
	Method     string            `json:"method"`
	Sparsity   preparedSparsity  `json:"sparsity"`
	SVD        *preparedSVD      `json:"svd,omitempty"`
	BaseFormat string            `json:"base_format"`
	Source     preparedSource    `json:"source"`
	Result     preparedResult    `json:"result"`
	Tool       map[string]string `json:"tool,omitempty"`
}

// preparedSparsity are the sparsity.* settings, in canonical form.
type preparedSparsity struct {
	Score         string   `json:"score"`
	Pattern       string   `json:"pattern"`
	Ratio         float64  `json:"ratio"`
	TargetModules []string `json:"target_modules"`
	// Calibration is set for wanda, whose masks depend on the data.
	Calibration *preparedCalibration `json:"calibration,omitempty"`
}

// preparedCalibration identifies wanda's calibration data.
type preparedCalibration struct {
	Batches   int    `json:"calibration_batches"`
	TrainPath string `json:"train_path"`
	Sequences int    `json:"sequences"`
	// TokensSHA256 is the SHA-256 of the calibration sequences' token ids
	// (calibrationHash).
	TokensSHA256 string `json:"tokens_sha256"`
}

// preparedSVD are the adapters.svd_* settings and the seed of the sketch.
type preparedSVD struct {
	Rank       int    `json:"svd_rank"`
	Method     string `json:"svd_method"`
	Oversample int    `json:"svd_oversample"`
	PowerIters int    `json:"svd_power_iters"`
	// Seed is the train.seed of the preparing run, from which each
	// projection's sketch seed derives.
	Seed int64 `json:"seed"`
}

// preparedSource is the model the base was made from.
type preparedSource struct {
	Path string `json:"path"`
	// ConfigSHA256 is the SHA-256 of the source's configuration written as
	// config.json (model.Config.MarshalHF).
	ConfigSHA256 string `json:"config_sha256"`
}

// preparedResult is what pruning and the SVD found, so that a run from the
// prepared base reports the same figures.
type preparedResult struct {
	Projections map[string]preparedProjection `json:"projections"`
}

// preparedProjection is one pruned projection's statistics.
type preparedProjection struct {
	Stats sparsity.SplitStats `json:"stats"`
	// SVDEnergy is the squared norm the SVD adapter captures of the
	// residual's squared norm SVDResidual (prune+svd only).
	SVDEnergy   float64 `json:"svd_energy,omitempty"`
	SVDResidual float64 `json:"svd_residual,omitempty"`
}

// settingsFor is the part of the settings a run of cfg requires of a
// prepared base (calibration: wanda's, else nil), in canonical form.
func settingsFor(cfg *configs.Config, calibration *preparedCalibration) (*preparedSettings, error) {
	sp := cfg.Sparsity
	spec, err := sparsity.ParseSpec(sp.Score, sp.Pattern, sp.Ratio)
	if err != nil {
		return nil, err
	}
	targets, err := sparsity.ParseTargets(sp.TargetModules)
	if err != nil {
		return nil, err
	}
	format, err := model.ParseBaseFormat(cfg.Output.BaseFormat)
	if err != nil {
		return nil, fmt.Errorf("trainer: output.base_format: %w", err)
	}
	st := &preparedSettings{Method: preparedPrune, BaseFormat: string(format),
		Sparsity: preparedSparsity{Score: string(spec.Method), Pattern: sp.Pattern, Ratio: sp.Ratio,
			TargetModules: targets.Modules(), Calibration: calibration}}
	if cfg.HasSVDAdapter() {
		ac := cfg.Adapters
		st.Method = preparedPruneSVD
		st.SVD = &preparedSVD{Rank: ac.SVDRank, Method: ac.SVDMethod, Oversample: ac.SVDOversample,
			PowerIters: ac.SVDPowerIters, Seed: cfg.Train.Seed}
	}
	return st, nil
}

// calibrationFor describes the wanda calibration data of a run of cfg on
// data (nil for other scores, and when data is not loaded yet).
func calibrationFor(cfg *configs.Config, data *Data) *preparedCalibration {
	spec, err := sparsity.ParseSpec(cfg.Sparsity.Score, cfg.Sparsity.Pattern, cfg.Sparsity.Ratio)
	if err != nil || spec.Method != sparsity.Wanda || data == nil {
		return nil
	}
	seqs := calibrationSeqs(cfg, data)
	return &preparedCalibration{Batches: cfg.Sparsity.CalibrationBatches, TrainPath: cfg.Data.TrainPath,
		Sequences: len(seqs), TokensSHA256: calibrationHash(seqs)}
}

// calibrationHash is the SHA-256 of the sequences' token ids, each sequence
// as its length and then its ids, little-endian uint32.
func calibrationHash(seqs [][]int) string {
	h := sha256.New()
	var b [4]byte
	put := func(v int) {
		binary.LittleEndian.PutUint32(b[:], uint32(v))
		h.Write(b[:])
	}
	for _, s := range seqs {
		put(len(s))
		for _, id := range s {
			put(id)
		}
	}
	return hex.EncodeToString(h.Sum(nil))
}

// mismatches lists, as "key: prepared X, config Y", every setting of the
// prepared base p that differs from what the run wants (w).
func (p *preparedSettings) mismatches(w *preparedSettings, method string) []string {
	var out []string
	diff := func(key string, prepared, config any) {
		ps, cs := settingString(prepared), settingString(config)
		if ps != cs {
			out = append(out, fmt.Sprintf("%s: prepared %s, config %s", key, ps, cs))
		}
	}
	diff("sparsity.score", p.Sparsity.Score, w.Sparsity.Score)
	diff("sparsity.pattern", p.Sparsity.Pattern, w.Sparsity.Pattern)
	diff("sparsity.ratio", p.Sparsity.Ratio, w.Sparsity.Ratio)
	diff("sparsity.target_modules", p.Sparsity.TargetModules, w.Sparsity.TargetModules)
	if pc, wc := p.Sparsity.Calibration, w.Sparsity.Calibration; pc != nil && wc != nil {
		diff("sparsity.calibration_batches", pc.Batches, wc.Batches)
		if pc.Batches == wc.Batches && pc.TokensSHA256 != wc.TokensSHA256 {
			out = append(out, fmt.Sprintf("wanda calibration data: prepared %d sequences of %s (token SHA-256 %.12s), config %d sequences of %s (%.12s); data.*, train.batch_size and train.seed select them",
				pc.Sequences, pc.TrainPath, pc.TokensSHA256, wc.Sequences, wc.TrainPath, wc.TokensSHA256))
		}
	}
	diff("output.base_format", p.BaseFormat, w.BaseFormat)
	if w.SVD != nil {
		if p.SVD == nil {
			out = append(out, fmt.Sprintf("method: prepared %s (no SVD factors), config %s (needs the SVD residual adapters)", p.Method, method))
			return out
		}
		diff("adapters.svd_rank", p.SVD.Rank, w.SVD.Rank)
		diff("adapters.svd_method", p.SVD.Method, w.SVD.Method)
		if p.SVD.Method != string(adapters.SVDExact) || w.SVD.Method != string(adapters.SVDExact) {
			// The exact SVD has no sketch: these do not change it.
			diff("adapters.svd_oversample", p.SVD.Oversample, w.SVD.Oversample)
			diff("adapters.svd_power_iters", p.SVD.PowerIters, w.SVD.PowerIters)
		}
	}
	return out
}

// settingString formats a setting value for a mismatch message.
func settingString(v any) string {
	switch v := v.(type) {
	case float64:
		return strconv.FormatFloat(v, 'g', -1, 64)
	case string:
		return strconv.Quote(v)
	case []string:
		return "[" + strings.Join(v, ", ") + "]"
	}
	return fmt.Sprint(v)
}

// readPrepared parses the settings of the prepared base of cfg.Model.Path.
func readPrepared(cfg *configs.Config, pr *model.Prepared) (*preparedSettings, error) {
	var st preparedSettings
	if err := json.Unmarshal(pr.Settings, &st); err != nil {
		return nil, fmt.Errorf("trainer: model.path %s: metadata %q: %v", cfg.Model.Path, model.PreparedMetadataKey, err)
	}
	if st.Method != preparedPrune && st.Method != preparedPruneSVD {
		return nil, fmt.Errorf("trainer: model.path %s: metadata %q: unknown method family %q", cfg.Model.Path, model.PreparedMetadataKey, st.Method)
	}
	if st.Method == preparedPruneSVD && st.SVD == nil {
		return nil, fmt.Errorf("trainer: model.path %s: metadata %q: method %s without svd settings", cfg.Model.Path, model.PreparedMetadataKey, st.Method)
	}
	return &st, nil
}

// checkPrepared reports a run of cfg on data that the prepared base pr was
// not made for: one that does not prune (lora), or whose sparsity, base
// format or (for the methods with the SVD adapter) SVD settings differ. It
// reads no weights; pr needs only its Settings, and with data nil wanda's
// calibration data is not compared.
func checkPrepared(cfg *configs.Config, pr *model.Prepared, data *Data) error {
	path := cfg.Model.Path
	if !cfg.Prunes() {
		return fmt.Errorf("trainer: model.path %s is a prepared (pruned) base, and method %q trains on the dense model: point model.path at the original model", path, cfg.Method)
	}
	st, err := readPrepared(cfg, pr)
	if err != nil {
		return err
	}
	want, err := settingsFor(cfg, calibrationFor(cfg, data))
	if err != nil {
		return err
	}
	if bad := st.mismatches(want, cfg.Method); len(bad) > 0 {
		return fmt.Errorf("trainer: model.path %s is a prepared base (made from %s) with other settings than this config's:\n  %s\nrun salr-prepare again with this config, or change the config to match",
			path, st.Source.Path, strings.Join(bad, "\n  "))
	}
	return nil
}

// usePrepared sets up the pruned projections from the prepared base in
// place of pruning: the bases as stored (in output.base_format), their
// statistics, and the initial SVD residual adapters.
func (s *Setup) usePrepared(logf func(string, ...any)) error {
	cfg := s.Config
	pr := s.Loaded.Checkpoint.Prepared
	st, err := readPrepared(cfg, pr)
	if err != nil {
		return err
	}
	format, err := model.ParseBaseFormat(cfg.Output.BaseFormat)
	if err != nil {
		return err
	}
	var pruned, total int
	for l := range s.Params.Layers {
		for _, lin := range s.Params.Layers[l].Linears() {
			p, ok := st.Result.Projections[lin.Module]
			if !ok {
				continue
			}
			rows, cols := lin.Base.Rows(), lin.Base.Cols()
			if p.Stats.Rows != rows || p.Stats.Cols != cols {
				return fmt.Errorf("trainer: model.path %s: the prepared statistics of %s are for %d×%d, the weight is %d×%d", cfg.Model.Path, lin.Module, p.Stats.Rows, p.Stats.Cols, rows, cols)
			}
			if err := restoreBaseFormat(lin, format); err != nil {
				return fmt.Errorf("trainer: model.path %s: %w", cfg.Model.Path, err)
			}
			s.Pruned[lin.Module] = p.Stats
			pruned += p.Stats.Pruned
			total += rows * cols
			if !cfg.HasSVDAdapter() {
				continue
			}
			f, ok := pr.Factors[lin.Module]
			if !ok {
				return fmt.Errorf("trainer: model.path %s has no SVD factors of %s", cfg.Model.Path, lin.Module)
			}
			s.svd[lin.Module] = svdResult{Adapter: &adapters.LowRank{Kind: adapters.KindSVD, Rank: f.Rank, In: cols, Out: rows,
				A: f.A, B: f.B, Scale: f.Scale, Trainable: cfg.Adapters.SVDTrainable}, Energy: p.SVDEnergy, Residual: p.SVDResidual}
		}
	}
	// attachAdapters copies the factors into the concatenated adapters.
	pr.Factors = nil
	if len(s.Pruned) != len(st.Result.Projections) {
		return fmt.Errorf("trainer: model.path %s: the prepared statistics name %d projections, the model has %d of them", cfg.Model.Path, len(st.Result.Projections), len(s.Pruned))
	}
	if total > 0 {
		s.Sparsity = float64(pruned) / float64(total)
	}
	logf("prepared base (made from %s): %d pruned projections (%s/%s): sparsity %.4f (%d of %d weights), bases stored as %s; pruning and SVD skipped",
		st.Source.Path, len(s.Pruned), st.Sparsity.Score, st.Sparsity.Pattern, s.Sparsity, pruned, total, format)
	return nil
}

// restoreBaseFormat gives lin's stored base the kernel of format: a dense
// base is read back as float32 whatever dtype it was stored in, which holds
// its values exactly, so dense-bf16 re-rounds them without change.
func restoreBaseFormat(lin *model.Linear[float32], format model.BaseFormat) error {
	if got, err := model.ParseBaseFormat(model.BaseFormatName(lin.Base)); err == nil && got == format {
		return nil
	}
	if _, ok := format.BitmapDType(); ok {
		return fmt.Errorf("the base of %s is stored as %s, not %s", lin.Module, model.BaseFormatName(lin.Base), format)
	}
	var w []float32
	switch b := lin.Base.(type) {
	case *kernels.Dense[float32]:
		w = b.W
	case interface{ Decode(dst []float32) }:
		w = make([]float32, lin.Base.Rows()*lin.Base.Cols())
		b.Decode(w)
	default:
		return fmt.Errorf("the base of %s is stored as %s, not %s", lin.Module, model.BaseFormatName(lin.Base), format)
	}
	base, err := model.NewBaseMatrix(w, lin.Base.Rows(), lin.Base.Cols(), format)
	if err != nil {
		return err
	}
	lin.Base = base
	return nil
}

// PrepareOptions configures WritePrepared.
type PrepareOptions struct {
	// Overwrite replaces the model files of an existing directory.
	Overwrite bool
	// Log receives one-line messages (nil: discarded).
	Log io.Writer
	// Progress receives the progress bar of pruning and the SVD, for a
	// terminal (nil or a file that is not a terminal: log lines instead).
	Progress io.Writer
}

// PreparedSummary describes a prepared base written by WritePrepared.
type PreparedSummary struct {
	Projections int
	Sparsity    float64
	SVDRank     int // 0 without SVD factors
	BaseFormat  string
}

// WritePrepared prunes the model of cfg (and computes the SVD residual
// adapters when cfg.Method has them) exactly as a training run of cfg does,
// and writes the result to dir as a prepared base: the compressed model,
// the tokenizer, the initial SVD factors and the settings. An existing dir
// is refused unless o.Overwrite is set.
func WritePrepared(cfg *configs.Config, dir string, o PrepareOptions) (*PreparedSummary, error) {
	if !cfg.Prunes() {
		return nil, fmt.Errorf("trainer: method %q does not prune, so there is nothing to prepare (salr-prepare serves %s, %s, %s and %s)",
			cfg.Method, configs.MethodSALR, configs.MethodPruneLoRA, configs.MethodPrune, configs.MethodPruneSVD)
	}
	if _, err := os.Stat(dir); err == nil && !o.Overwrite {
		return nil, fmt.Errorf("trainer: %s already exists; pass -overwrite to replace it", dir)
	} else if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("trainer: %w", err)
	}
	if model.IsCompressedDir(cfg.Model.Path) {
		return nil, fmt.Errorf("trainer: model.path %s is already pruned (a compressed model or a prepared base): prepare from the original model", cfg.Model.Path)
	}
	logf := func(string, ...any) {}
	if o.Log != nil {
		logf = func(format string, a ...any) { fmt.Fprintf(o.Log, format+"\n", a...) }
	}
	s, err := build(cfg, logf, o.Progress)
	if err != nil {
		return nil, err
	}
	defer s.Close()
	st, err := settingsFor(cfg, calibrationFor(cfg, s.Data))
	if err != nil {
		return nil, err
	}
	st.Source, err = sourceOf(cfg.Model.Path, s.Params.Config)
	if err != nil {
		return nil, err
	}
	st.Tool = toolVersion()
	st.Result.Projections = map[string]preparedProjection{}
	pr := &model.Prepared{Factors: map[string]*model.PreparedFactors{}}
	for module, stats := range s.Pruned {
		p := preparedProjection{Stats: stats}
		if svd, ok := s.svd[module]; ok {
			p.SVDEnergy, p.SVDResidual = svd.Energy, svd.Residual
			if a := svdPart(s.Adapters[module]); a != nil {
				pr.Factors[module] = &model.PreparedFactors{Rank: a.Rank, A: a.A, B: a.B, Scale: a.Scale}
			}
		}
		st.Result.Projections[module] = p
	}
	if pr.Settings, err = json.Marshal(st); err != nil {
		return nil, err
	}
	err = model.WriteParams(dir, s.Params, model.ParamsFileOptions{DType: sourceDType(s.Params.Config),
		Compressed: true, Prepared: pr, Overwrite: o.Overwrite})
	if err != nil {
		return nil, fmt.Errorf("trainer: writing the prepared base: %w", err)
	}
	if err := WriteTokenizer(s.Tokenizer, cfg.Model.Tokenizer, cfg.Model.Path, dir); err != nil {
		return nil, err
	}
	sum := &PreparedSummary{Projections: len(s.Pruned), Sparsity: s.Sparsity, BaseFormat: st.BaseFormat}
	if st.SVD != nil {
		sum.SVDRank = st.SVD.Rank
	}
	return sum, nil
}

// sourceDType is the dtype the source checkpoint's tensors are stored in
// (config.json's torch_dtype; F32 when absent or unknown), in which every
// unpruned tensor and dense base is stored exactly.
func sourceDType(c model.Config) safetensors.DType {
	switch d, _ := safetensors.ParseDType(c.TorchDtype); d {
	case safetensors.BF16, safetensors.F16:
		return d
	}
	return safetensors.F32
}

// sourceOf identifies the model at path, whose configuration is c.
func sourceOf(path string, c model.Config) (preparedSource, error) {
	abs, err := filepath.Abs(path)
	if err != nil {
		return preparedSource{}, err
	}
	b, err := c.MarshalHF()
	if err != nil {
		return preparedSource{}, err
	}
	sum := sha256.Sum256(b)
	return preparedSource{Path: abs, ConfigSHA256: hex.EncodeToString(sum[:])}, nil
}

// toolVersion is the module version and VCS revision of this build, when
// the binary records them.
func toolVersion() map[string]string {
	info, ok := debug.ReadBuildInfo()
	if !ok {
		return nil
	}
	out := map[string]string{"module": info.Main.Path, "version": info.Main.Version}
	for _, s := range info.Settings {
		if s.Key == "vcs.revision" || s.Key == "vcs.modified" {
			out[s.Key] = s.Value
		}
	}
	maps.DeleteFunc(out, func(_, v string) bool { return v == "" })
	return out
}

// svdPart returns a copy of the SVD residual adapter among f's parts, or nil.
func svdPart(f *adapters.Fused) *adapters.LowRank {
	if f == nil {
		return nil
	}
	for i, p := range f.Parts {
		if p.Kind == adapters.KindSVD {
			return f.Adapter(i)
		}
	}
	return nil
}
