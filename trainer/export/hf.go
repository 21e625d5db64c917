package export

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"

	"github.com/salr-go/salr/internal/atomicfile"
	"github.com/salr-go/salr/model"
	"github.com/salr-go/salr/model/safetensors"
	"github.com/salr-go/salr/trainer"
)

// GenerationConfigFile is the generation settings file of an HF directory.
const GenerationConfigFile = "generation_config.json"

// hfDTypes maps Options.DType to safetensors dtypes.
var hfDTypes = map[string]safetensors.DType{DTypeF32: safetensors.F32, DTypeF16: safetensors.F16, DTypeBF16: safetensors.BF16}

// writeHF writes l, merged, as an HF model directory at dir: the weights
// (model.safetensors, or shards of at most o.MaxShardSize tensor bytes with
// model.safetensors.index.json), then the tokenizer files copied or written
// from srcDir's tokenizer, generation_config.json and config.json last.
// Model files of an earlier export that the new one does not use are
// removed.
func writeHF(dir string, l *model.Loaded, srcDir string, o Options) error {
	dtype := hfDTypes[o.DType]
	cfg := l.Params.Config
	cfg.TorchDtype = dtype.TorchName()
	configJSON, err := cfg.MarshalHF()
	if err != nil {
		return fmt.Errorf("export: %w", err)
	}
	tensors, err := mergedTensors(l.Params)
	if err != nil {
		return err
	}
	byName := map[string]tensor{}
	infos := make([]safetensors.TensorInfo, len(tensors))
	for i, t := range tensors {
		byName[t.name] = t
		infos[i] = safetensors.TensorInfo{Name: t.name, DType: dtype, Shape: t.shape}
	}
	maxShard := o.MaxShardSize
	if maxShard == 0 {
		maxShard = DefaultMaxShardSize
	}
	shards := safetensors.PlanShards(infos, maxShard)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("export: %w", err)
	}
	weightMap := map[string]string{}
	written := map[string]bool{}
	var total int64
	for i, shard := range shards {
		file := safetensors.SingleFileName
		if len(shards) > 1 {
			file = safetensors.ShardFileName(i+1, len(shards))
		}
		layout, err := safetensors.NewLayout(shard, nil)
		if err != nil {
			return fmt.Errorf("export: %w", err)
		}
		err = safetensors.WriteStream(filepath.Join(dir, file), layout, func(ti safetensors.TensorInfo, w io.Writer) error {
			values, err := byName[ti.Name].values()
			if err != nil {
				return err
			}
			var data []byte
			if dtype == safetensors.F32 {
				data = safetensors.Float32View(values)
			} else if data, err = safetensors.EncodeFloat32(values, dtype); err != nil {
				return err
			}
			_, err = w.Write(data)
			return err
		})
		if err != nil {
			return fmt.Errorf("export: writing %s: %w", filepath.Join(dir, file), err)
		}
		for _, t := range shard {
			weightMap[t.Name] = file
		}
		written[file] = true
		total += layout.DataSize()
	}
	if len(shards) > 1 {
		if err := safetensors.WriteIndex(filepath.Join(dir, safetensors.IndexFileName), weightMap, total); err != nil {
			return fmt.Errorf("export: %w", err)
		}
		written[safetensors.IndexFileName] = true
	}
	if err := trainer.WriteTokenizer(l.Tokenizer, "", srcDir, dir); err != nil {
		return err
	}
	genJSON, err := generationConfig(cfg, l)
	if err != nil {
		return err
	}
	if err := atomicfile.WriteBytes(filepath.Join(dir, GenerationConfigFile), genJSON); err != nil {
		return fmt.Errorf("export: %w", err)
	}
	if err := atomicfile.WriteBytes(filepath.Join(dir, model.HFConfigFileName), configJSON); err != nil {
		return fmt.Errorf("export: %w", err)
	}
	return removeStaleWeights(dir, written)
}

// generationConfig is generation_config.json as transformers derives it
// from a model's configuration: the BOS and EOS ids.
func generationConfig(cfg model.Config, l *model.Loaded) ([]byte, error) {
	gen := map[string]any{"_from_model_config": true}
	if bos := l.Tokenizer.BOS(); bos >= 0 {
		gen["bos_token_id"] = bos
	} else if cfg.BOSTokenID >= 0 {
		gen["bos_token_id"] = cfg.BOSTokenID
	}
	switch {
	case len(cfg.EOSTokenIDs) == 1:
		gen["eos_token_id"] = cfg.EOSTokenIDs[0]
	case len(cfg.EOSTokenIDs) > 1:
		gen["eos_token_id"] = cfg.EOSTokenIDs
	case l.Tokenizer.EOS() >= 0:
		gen["eos_token_id"] = l.Tokenizer.EOS()
	}
	b, err := json.MarshalIndent(gen, "", "  ")
	return append(b, '\n'), err
}

// removeStaleWeights deletes the weight files and index of an earlier
// export in dir that the new one (written) does not use.
func removeStaleWeights(dir string, written map[string]bool) error {
	entries, err := os.ReadDir(dir)
	if err != nil {
		return fmt.Errorf("export: %w", err)
	}
	for _, e := range entries {
		name := e.Name()
		weights := name == safetensors.SingleFileName || name == safetensors.IndexFileName ||
			(strings.HasPrefix(name, "model-") && strings.Contains(name, "-of-") && strings.HasSuffix(name, ".safetensors"))
		if !weights || written[name] {
			continue
		}
		if err := os.Remove(filepath.Join(dir, name)); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return fmt.Errorf("export: removing the stale %s: %w", name, err)
		}
	}
	return nil
}
