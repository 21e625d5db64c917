package trainer

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"

	"github.com/salr-go/salr/adapters"
	"github.com/salr-go/salr/configs"
	"github.com/salr-go/salr/internal/atomicfile"
	"github.com/salr-go/salr/model"
	"github.com/salr-go/salr/model/gguf"
	"github.com/salr-go/salr/model/safetensors"
	"github.com/salr-go/salr/model/tokenizer"
)

// Export writes a run's products into runDir:
//
//	adapter/                    the adapters in PEFT form (adapter_config.json,
//	                            adapter_model.safetensors) and in SALR's own
//	                            form (salr_adapters.safetensors)
//	base/                       the pruned base as a dense HF model directory
//	                            (config.json, model.safetensors, tokenizer),
//	                            what HF tools and the PEFT adapter load
//	compressed/                 with a bitmap-* or *-nf4 base_format: the compressed
//	                            model (bitmap bases, trained adapters,
//	                            tokenizer; see model.WriteParams)
//
// as the config's output section asks.
func (s *Setup) Export(runDir string) error {
	out := s.Config.Output
	baseDir := filepath.Join(runDir, BaseDir)
	if len(s.Adapters) > 0 {
		dir := filepath.Join(runDir, AdapterDir)
		if err := os.MkdirAll(dir, 0o755); err != nil {
			return fmt.Errorf("trainer: %w", err)
		}
		if err := adapters.WriteNative(filepath.Join(dir, adapters.NativeFile), s.Adapters); err != nil {
			return fmt.Errorf("trainer: exporting adapters: %w", err)
		}
		if out.SavePEFT {
			absBase, err := filepath.Abs(baseDir)
			if err != nil {
				return err
			}
			if err := adapters.WritePEFT(dir, s.Adapters, absBase, s.peftSaved()...); err != nil {
				return fmt.Errorf("trainer: exporting the PEFT adapter: %w", err)
			}
		}
	}
	if !out.SaveBase {
		return nil
	}
	if err := s.writeBase(baseDir); err != nil {
		return err
	}
	if model.BaseFormat(s.Config.BaseFormat()).Compressed() {
		return s.writeCompressed(filepath.Join(runDir, CompressedDir))
	}
	return nil
}

// exportedSizes are the sizes of the model.safetensors files of runDir's
// base/ and compressed/ (0 for a file that was not written).
func exportedSizes(runDir string) (base, compressed int64) {
	size := func(dir string) int64 {
		st, err := os.Stat(filepath.Join(runDir, dir, safetensors.SingleFileName))
		if err != nil {
			return 0
		}
		return st.Size()
	}
	return size(BaseDir), size(CompressedDir)
}

// writeBase writes the model as trained, without its adapters, as a dense HF
// directory (pruned projections hold W0 ⊙ M with zeros, decoded from their
// stored form) with the tokenizer.
func (s *Setup) writeBase(dir string) error {
	err := model.WriteParams(dir, s.Params, model.ParamsFileOptions{DType: model.BaseFormat(s.Config.BaseFormat()).DType(), Overwrite: true})
	if err != nil {
		return fmt.Errorf("trainer: writing the pruned base: %w", err)
	}
	return WriteTokenizer(s.Tokenizer, s.Config.Model.Tokenizer, s.Config.Model.Path, dir)
}

// writeCompressed writes the model as trained, bitmap bases and adapters, as
// a compressed model directory with the tokenizer.
func (s *Setup) writeCompressed(dir string) error {
	parts := make(map[string]json.RawMessage, len(s.Adapters))
	for module, f := range s.Adapters {
		b, err := json.Marshal(f.Parts)
		if err != nil {
			return err
		}
		parts[module] = b
	}
	err := model.WriteParams(dir, s.Params, model.ParamsFileOptions{DType: model.BaseFormat(s.Config.BaseFormat()).DType(),
		Compressed: true, Adapters: true, AdapterParts: parts, Overwrite: true})
	if err != nil {
		return fmt.Errorf("trainer: writing the compressed model: %w", err)
	}
	return WriteTokenizer(s.Tokenizer, s.Config.Model.Tokenizer, s.Config.Model.Path, dir)
}

// WriteTokenizer puts the model's tokenizer files into an HF directory: a
// SentencePiece tokenizer (llama2.c's included) and a byte-level BPE read
// from a GGUF file are written as tokenizer.json; otherwise the tokenizer files (tokenizer.json, tokenizer_config.json,
// special_tokens_map.json) are copied from the directory of tokenizerPath,
// or of modelPath when tokenizerPath is empty.
func WriteTokenizer(tok tokenizer.Tokenizer, tokenizerPath, modelPath, dir string) error {
	if sp, ok := tok.(*tokenizer.SentencePiece); ok {
		if err := sp.WriteHF(dir); err != nil {
			return fmt.Errorf("trainer: writing the tokenizer: %w", err)
		}
		return nil
	}
	fromGGUF := gguf.HasExtension(tokenizerPath) || tokenizerPath == "" && gguf.HasExtension(modelPath)
	if bl, ok := tok.(*tokenizer.ByteLevelBPE); ok && fromGGUF {
		if err := bl.WriteHF(dir); err != nil {
			return fmt.Errorf("trainer: writing the tokenizer: %w", err)
		}
		return nil
	}
	srcDir := tokenizerPath
	if srcDir == "" {
		srcDir = modelPath
	}
	if st, err := os.Stat(srcDir); err == nil && !st.IsDir() {
		srcDir = filepath.Dir(srcDir)
	}
	copied := 0
	for _, name := range []string{"tokenizer.json", "tokenizer_config.json", "special_tokens_map.json"} {
		err := copyFile(filepath.Join(srcDir, name), filepath.Join(dir, name))
		switch {
		case errors.Is(err, os.ErrNotExist):
		case err != nil:
			return fmt.Errorf("trainer: copying the tokenizer: %w", err)
		default:
			copied++
		}
	}
	if copied == 0 {
		return fmt.Errorf("trainer: no tokenizer.json found in %s to copy into %s", srcDir, dir)
	}
	return nil
}

func copyFile(src, dst string) error {
	in, err := os.Open(src)
	if err != nil {
		return err
	}
	defer in.Close()
	return atomicfile.Write(dst, func(w io.Writer) error {
		_, err := io.Copy(w, in)
		return err
	})
}

// OpenModelOrRun loads what the -model/-tokenizer or -run flags of the
// inference commands name: the run directory runDir (OpenRun) when it is
// set, else the model at modelPath with the tokenizer at tokenizerPath
// (model.Open; "" for the model's own).
func OpenModelOrRun(modelPath, tokenizerPath, runDir string) (*model.Loaded, error) {
	if runDir != "" {
		return OpenRun(runDir)
	}
	return model.Open(modelPath, tokenizerPath)
}

// OpenRun loads a run directory for inference: its compressed model
// (compressed/: bitmap bases with the trained adapters) when present, else
// its pruned base (base/) with its trained adapters
// (adapter/salr_adapters.safetensors) attached. Missing adapters are an
// error unless the run's config.toml names a method without them (prune).
func OpenRun(runDir string) (*model.Loaded, error) {
	compressed := filepath.Join(runDir, CompressedDir)
	if _, err := os.Stat(filepath.Join(compressed, model.HFConfigFileName)); err == nil {
		return model.Open(compressed, "")
	}
	base := filepath.Join(runDir, BaseDir)
	if _, err := os.Stat(filepath.Join(base, model.HFConfigFileName)); err != nil {
		return nil, fmt.Errorf("trainer: %s has no base model (was it trained with output.save_base = false, or not finished?): %w", runDir, err)
	}
	// The adapters are read, or found missing, before the base is loaded.
	path := filepath.Join(runDir, AdapterDir, adapters.NativeFile)
	mods, err := adapters.ReadNative(path)
	switch {
	case errors.Is(err, os.ErrNotExist):
		if err := checkNoAdapters(runDir, path); err != nil {
			return nil, err
		}
		mods = nil
	case err != nil:
		return nil, err
	}
	l, err := model.Open(base, "")
	if err != nil {
		return nil, err
	}
	if mods == nil {
		return l, nil // a method without adapters (prune)
	}
	if err := AttachAdapters(l.Params, mods); err != nil {
		l.Close()
		return nil, fmt.Errorf("trainer: %s: %w", path, err)
	}
	return l, nil
}

// checkNoAdapters is the error for a run directory whose adapters (at path)
// are missing although its config.toml names a method that has them. A
// directory without a config.toml (assembled by hand) is accepted.
func checkNoAdapters(runDir, path string) error {
	cfgPath := filepath.Join(runDir, ConfigFile)
	if _, err := os.Stat(cfgPath); errors.Is(err, os.ErrNotExist) {
		return nil
	}
	cfg, err := configs.Load(cfgPath, nil)
	if err != nil {
		return fmt.Errorf("trainer: %s: %w", runDir, err)
	}
	if cfg.SavesAdapters() {
		return fmt.Errorf("trainer: %s: method %q has adapters but %s is missing (was the run finished?)", cfgPath, cfg.Method, path)
	}
	return nil
}

// AttachAdapters sets the low-rank update of every projection named in mods.
func AttachAdapters(p *model.Params[float32], mods map[string]*adapters.Fused) error {
	seen := 0
	for _, L := range p.Layers {
		for _, lin := range L.Linears() {
			f, ok := mods[lin.Module]
			if !ok {
				continue
			}
			if f.In != lin.Base.Cols() || f.Out != lin.Base.Rows() {
				return fmt.Errorf("adapter of %s is %d×%d, the projection %d×%d", lin.Module, f.Out, f.In, lin.Base.Rows(), lin.Base.Cols())
			}
			lin.Adapter = &model.LowRank[float32]{A: f.A, B: f.B, Scale: f.Scale, R: f.Rank}
			seen++
		}
	}
	if seen != len(mods) {
		return fmt.Errorf("%d adapters name projections the model does not have", len(mods)-seen)
	}
	return nil
}
