package trainer

import (
	"context"
	"math"
	"path/filepath"
	"slices"
	"testing"

	"github.com/salr-go/salr/datasets"
	"github.com/salr-go/salr/model"
)

// TestPackedBatchMatchesUnpacked runs the GSM8K examples of one packed batch
// through the SALR graph of stories260K (pruned base, LoRA and SVD adapters)
// packed into two rows of 512, and then one per padded row: the loss and the gradient of every
// adapter tensor must agree to float32 rounding.
func TestPackedBatchMatchesUnpacked(t *testing.T) {
	cfg := tinyConfig(t, t.TempDir(), "adapters.lora_dropout=0", "data.packing=true", "data.seq_len=512")
	s, err := Build(cfg, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	T, pad := cfg.Data.SeqLen, max(s.Tokenizer.EOS(), 0)
	// Examples of stories260K's tokens run 120 to 513 tokens long (median
	// 341): keep those that leave room for a second one in a row.
	var short []datasets.Sequence
	for _, seq := range s.Data.Train {
		if len(seq.Tokens) <= T/2 {
			short = append(short, seq)
		}
	}
	packer, err := datasets.NewPackedLoader(short, 2, T, pad, 3)
	if err != nil {
		t.Fatal(err)
	}
	packed := packer.Next()
	if packed.Examples < 4 {
		t.Fatalf("only %d examples in two packed rows of %d", packed.Examples, T)
	}
	seqs := make([]datasets.Sequence, len(packed.Indices))
	for i, idx := range packed.Indices {
		seqs[i] = short[idx]
	}
	rows, err := datasets.NewLoader(seqs, len(seqs), T, pad, 3)
	if err != nil {
		t.Fatal(err)
	}
	unpacked := rows.Next()
	if unpacked.LossTokens != packed.LossTokens {
		t.Fatalf("%d loss tokens unpacked, %d packed", unpacked.LossTokens, packed.LossTokens)
	}

	run := func(b datasets.Batch, batch int) (float64, [][]float32) {
		g, err := model.BuildGraph(s.Params, model.GraphOptions[float32]{
			Batch: batch, Seq: T, Adapter: s.GraphAdapter, Packed: b.Positions != nil})
		if err != nil {
			t.Fatal(err)
		}
		defer g.Close()
		loss, err := g.StepPositions(b.Inputs, b.Targets, b.Positions, b.Mask)
		if err != nil {
			t.Fatal(err)
		}
		if err := s.ReadGrads(g); err != nil {
			t.Fatal(err)
		}
		grads := make([][]float32, len(s.Trainables))
		for i, p := range s.Trainables {
			grads[i] = slices.Clone(p.Grad)
		}
		return float64(loss), grads
	}
	lp, gp := run(packed, 2)
	lu, gu := run(unpacked, len(seqs))
	t.Logf("%d examples in 2 rows (%d in %d rows unpacked): loss %.7f packed, %.7f unpacked", packed.Examples, len(seqs), len(seqs), lp, lu)
	if math.Abs(lp-lu) > 1e-5*math.Abs(lu) {
		t.Errorf("loss packed %.7f, unpacked %.7f", lp, lu)
	}
	for i, p := range s.Trainables {
		var norm, diff float64
		for j := range gu[i] {
			norm += float64(gu[i][j]) * float64(gu[i][j])
			diff += float64(gp[i][j]-gu[i][j]) * float64(gp[i][j]-gu[i][j])
		}
		if norm == 0 {
			t.Fatalf("%s: zero gradient", p.Name)
		}
		if rel := math.Sqrt(diff / norm); rel > 1e-5 {
			t.Errorf("%s: packed gradient differs from unpacked by %.3g (relative norm)", p.Name, rel)
		}
	}
}

// TestPackedResumeIsBitIdentical stops a packed run after 3 steps and
// resumes it: the adapters equal an uninterrupted packed run's byte for byte,
// and the run took more examples per step than an unpacked one.
func TestPackedResumeIsBitIdentical(t *testing.T) {
	if testing.Short() {
		t.Skip("trains three small runs")
	}
	root := t.TempDir()
	sets := []string{"train.max_steps=6", "data.seq_len=512", "adapters.lora_dropout=0.1", "data.packing=true"}
	ref := filepath.Join(root, "ref")
	if _, err := Train(context.Background(), Options{Config: tinyConfig(t, ref, sets...)}); err != nil {
		t.Fatal(err)
	}
	stopped := filepath.Join(root, "stopped")
	if _, err := Train(context.Background(), Options{Config: tinyConfig(t, stopped, sets...), StopAfter: 3}); err != ErrInterrupted {
		t.Fatalf("stop: %v", err)
	}
	if _, err := Train(context.Background(), Options{Resume: stopped}); err != nil {
		t.Fatal(err)
	}
	sameAdapters(t, ref, stopped)

	plain := filepath.Join(root, "plain")
	if _, err := Train(context.Background(), Options{Config: tinyConfig(t, plain, sets[:3]...)}); err != nil {
		t.Fatal(err)
	}
	taken := func(dir string) int {
		ck, err := latestCheckpoint(dir)
		if err != nil || ck == "" {
			t.Fatalf("%s: no checkpoint (%v)", dir, err)
		}
		st, err := readCheckpointState(ck, t.Logf)
		if err != nil {
			t.Fatal(err)
		}
		sum, err := ReadSummary(dir)
		if err != nil {
			t.Fatal(err)
		}
		return st.Loader.Epoch*sum.TrainExamples + st.Loader.Cursor
	}
	if p, u := taken(ref), taken(plain); p <= u {
		t.Errorf("packed run took %d examples in 6 steps, unpacked %d", p, u)
	}
}
