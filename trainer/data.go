package trainer

import (
	"fmt"

	"github.com/salr-go/salr/configs"
	"github.com/salr-go/salr/datasets"
)

// Data is the tokenised training and held-out sets of a run.
type Data struct {
	Train, Eval []datasets.Sequence
	// Stats of the training set's tokenisation (truncated/dropped examples).
	Stats datasets.TokenizeStats
	// First is the first training example as rendered, before
	// tokenisation (shown in the log to make the template visible).
	First datasets.Example
}

// readExamples reads prompt/response examples from path in the configured
// format. maxExamples bounds a metamathqa selection (0: all), which is
// shuffled by seed; the other formats return the whole file in file order.
func readExamples(dc configs.DataConfig, path string, maxExamples int, seed int64) ([]datasets.Example, error) {
	switch dc.Format {
	case configs.FormatGSM8K:
		docs, err := datasets.ReadGSM8K(path)
		if err != nil {
			return nil, err
		}
		ex := make([]datasets.Example, len(docs))
		for i, d := range docs {
			ex[i] = datasets.GSM8KTrainExample(d)
		}
		return ex, nil
	case configs.FormatJSONL:
		return datasets.ReadJSONL(path, dc.PromptField, dc.ResponseField)
	case configs.FormatMetaMathQA:
		recs, err := datasets.ReadMetaMathQA(path, datasets.MetaMathSelection{Types: dc.Types, Max: maxExamples, Seed: uint64(seed)})
		if err != nil {
			return nil, err
		}
		ex := make([]datasets.Example, len(recs))
		for i, r := range recs {
			ex[i] = datasets.MetaMathTrainExample(r)
		}
		return ex, nil
	case configs.FormatMMLU:
		// auxiliary_train/, the data.tar root holding it, or another split
		// directory of the MMLU layout.
		docs, err := datasets.ReadMMLUTrain(path)
		if err != nil {
			return nil, err
		}
		ex := make([]datasets.Example, len(docs))
		for i, d := range docs {
			ex[i] = datasets.MMLUTrainExample(d)
		}
		return ex, nil
	}
	return nil, fmt.Errorf("trainer: unknown data.format %q", dc.Format)
}

// LoadData reads and tokenises a run's training data and its held-out set:
// data.eval_path when set, else data.eval_examples examples held out of the
// training file (chosen from the seed; none when 0). data.max_examples keeps
// the first examples of the file (metamathqa: of its seeded shuffle).
// Sequences hold at most seq_len+1 tokens (inputs and shifted targets). A
// held-out set that is enabled but has nothing to score is an error.
func LoadData(cfg *configs.Config, enc datasets.Encoder) (*Data, error) {
	dc := cfg.Data
	all, err := readExamples(dc, dc.TrainPath, dc.MaxExamples, cfg.Train.Seed)
	if err != nil {
		return nil, err
	}
	if dc.MaxExamples > 0 && len(all) > dc.MaxExamples {
		all = all[:dc.MaxExamples]
	}
	var train, eval []datasets.Example
	if dc.EvalPath != "" {
		train = all
		if eval, err = readExamples(dc, dc.EvalPath, 0, cfg.Train.Seed); err != nil {
			return nil, err
		}
	} else {
		if dc.EvalExamples >= len(all) {
			return nil, fmt.Errorf("trainer: data.eval_examples = %d leaves nothing to train on (%s has %d examples)", dc.EvalExamples, dc.TrainPath, len(all))
		}
		ti, ei := datasets.SplitHeldOut(len(all), dc.EvalExamples, uint64(cfg.Train.Seed))
		for _, i := range ti {
			train = append(train, all[i])
		}
		for _, i := range ei {
			eval = append(eval, all[i])
		}
	}
	overlong, err := datasets.ParseOverlong(dc.Overlong)
	if err != nil {
		return nil, err
	}
	d := &Data{First: train[0]}
	if d.Train, d.Stats, err = datasets.TokenizeAll(enc, train, dc.SeqLen+1, overlong); err != nil {
		return nil, fmt.Errorf("trainer: %s: %w", dc.TrainPath, err)
	}
	if len(d.Train) == 0 {
		return nil, fmt.Errorf("trainer: no training example of %s fits data.seq_len = %d", dc.TrainPath, dc.SeqLen)
	}
	var evalStats datasets.TokenizeStats
	if d.Eval, evalStats, err = datasets.TokenizeAll(enc, eval, dc.SeqLen+1, overlong); err != nil {
		return nil, fmt.Errorf("trainer: held-out set: %w", err)
	}
	// Every kept sequence has a loss target, so an empty held-out set is
	// the one HeldOutLoss cannot score.
	if heldOutEnabled(dc) && len(d.Eval) == 0 {
		src := dc.EvalPath
		if src == "" {
			src = fmt.Sprintf("data.eval_examples = %d examples of %s", dc.EvalExamples, dc.TrainPath)
		}
		return nil, fmt.Errorf("trainer: the held-out set (%s) has no loss tokens: of its %d examples, %d have no answer tokens within data.seq_len = %d and %d are too long; "+
			"raise data.seq_len, or set data.eval_examples = 0 (and no data.eval_path) to train without a held-out loss",
			src, len(eval), evalStats.NoTarget, dc.SeqLen, evalStats.Dropped)
	}
	return d, nil
}

// heldOutEnabled reports whether a run measures a held-out loss:
// data.eval_path is set or data.eval_examples is positive.
func heldOutEnabled(dc configs.DataConfig) bool {
	return dc.EvalPath != "" || dc.EvalExamples > 0
}

// heldOutSeqs are the held-out sequences a run evaluates: the first
// train.eval_batches batches of the held-out set (all when 0).
func heldOutSeqs(cfg *configs.Config, d *Data) []datasets.Sequence {
	tc := cfg.Train
	if tc.EvalBatches > 0 && len(d.Eval) > tc.EvalBatches*tc.BatchSize {
		return d.Eval[:tc.EvalBatches*tc.BatchSize]
	}
	return d.Eval
}

// elide shortens s to its first and last n/2 runes around " … " when it has
// more than n runes.
func elide(s string, n int) string {
	r := []rune(s)
	if len(r) <= n {
		return s
	}
	return string(r[:n/2]) + " … " + string(r[len(r)-n/2:])
}
