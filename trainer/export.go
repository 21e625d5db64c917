package trainer

import (
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"

	"github.com/salr-go/salr/adapters"
	"github.com/salr-go/salr/configs"
	"github.com/salr-go/salr/kernels"
	"github.com/salr-go/salr/model"
	"github.com/salr-go/salr/model/safetensors"
	"github.com/salr-go/salr/model/tokenizer"
)

// Export writes a run's products into runDir:
//
//	adapter/                    the adapters in PEFT form (adapter_config.json,
//	                            adapter_model.safetensors) and in SALR's own
//	                            form (salr_adapters.safetensors)
//	base/                       the pruned base as an HF model directory
//	                            (config.json, model.safetensors, tokenizer)
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
			if err := adapters.WritePEFT(dir, s.Adapters, absBase); err != nil {
				return fmt.Errorf("trainer: exporting the PEFT adapter: %w", err)
			}
		}
	}
	if out.SaveBase {
		if err := s.writeBase(baseDir); err != nil {
			return err
		}
	}
	return nil
}

// baseDType is the safetensors dtype the base is stored in.
func baseDType(format string) safetensors.DType {
	switch format {
	case configs.BaseDenseBF16, configs.BaseBitmapBF16:
		return safetensors.BF16
	case configs.BaseBitmapFP16:
		return safetensors.F16
	}
	return safetensors.F32
}

// writeBase writes the pruned base (every tensor of the checkpoint, pruned
// projections replaced by W0 ⊙ M) and the tokenizer as an HF directory.
func (s *Setup) writeBase(dir string) error {
	src := s.Loaded.Checkpoint
	ck := &model.Checkpoint{Config: src.Config, Tensors: make(map[string]*model.Tensor, len(src.Tensors)), Source: dir}
	for name, t := range src.Tensors {
		ck.Tensors[name] = t
	}
	for _, L := range s.Params.Layers {
		for _, lin := range L.Proj {
			if _, pruned := s.Pruned[lin.Module]; !pruned {
				continue
			}
			d := lin.Base.(*kernels.Dense[float32])
			ck.Tensors[lin.Module+".weight"] = &model.Tensor{Shape: []int{d.R, d.C}, Data: d.W}
		}
	}
	if err := model.WriteHF(dir, ck, baseDType(s.Config.Output.BaseFormat), model.ForceOverwrite()); err != nil {
		return fmt.Errorf("trainer: writing the pruned base: %w", err)
	}
	return writeTokenizer(s.Tokenizer, s.Config.Model, dir)
}

// writeTokenizer puts the model's tokenizer files into an HF directory: a
// SentencePiece tokenizer (llama2.c's included) is written as tokenizer.json;
// otherwise the source directory's tokenizer files are copied.
func writeTokenizer(tok tokenizer.Tokenizer, mc configs.ModelConfig, dir string) error {
	if sp, ok := tok.(*tokenizer.SentencePiece); ok {
		if err := sp.WriteHF(dir); err != nil {
			return fmt.Errorf("trainer: writing the tokenizer: %w", err)
		}
		return nil
	}
	srcDir := mc.Tokenizer
	if srcDir == "" {
		srcDir = mc.Path
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
	return safetensors.WriteAtomic(dst, func(w io.Writer) error {
		_, err := io.Copy(w, in)
		return err
	})
}

// OpenRun loads a run directory for inference: its pruned base (base/) with
// its trained adapters (adapter/salr_adapters.safetensors) attached.
func OpenRun(runDir string) (*model.Loaded, error) {
	base := filepath.Join(runDir, BaseDir)
	if _, err := os.Stat(filepath.Join(base, model.HFConfigFileName)); err != nil {
		return nil, fmt.Errorf("trainer: %s has no base model (was it trained with output.save_base = false, or not finished?): %w", runDir, err)
	}
	l, err := model.Open(base, "")
	if err != nil {
		return nil, err
	}
	path := filepath.Join(runDir, AdapterDir, adapters.NativeFile)
	mods, err := adapters.ReadNative(path)
	if errors.Is(err, os.ErrNotExist) {
		return l, nil // a method without adapters (prune)
	}
	if err != nil {
		l.Close()
		return nil, err
	}
	if err := AttachAdapters(l.Params, mods); err != nil {
		l.Close()
		return nil, fmt.Errorf("trainer: %s: %w", path, err)
	}
	return l, nil
}

// AttachAdapters sets the low-rank update of every projection named in mods.
func AttachAdapters(p *model.Params[float32], mods map[string]*adapters.Fused) error {
	seen := 0
	for _, L := range p.Layers {
		for _, lin := range L.Proj {
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
