package trainer

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"path/filepath"
	"time"

	"github.com/schollz/progressbar/v3"

	"github.com/salr-go/salr/configs"
	"github.com/salr-go/salr/datasets"
	"github.com/salr-go/salr/internal/atomicfile"
	"github.com/salr-go/salr/kernels"
	"github.com/salr-go/salr/model"
)

// ErrInterrupted is returned by Train when its context was cancelled (SIGINT,
// SIGTERM): a checkpoint was written and the run can be resumed.
var ErrInterrupted = errors.New("training interrupted; resume with -resume")

// Options configures Train.
type Options struct {
	// Config is the effective config of a new run (ignored with Resume: the
	// run directory's config.toml is used).
	Config *configs.Config
	// Resume continues the unfinished run in this directory.
	Resume string
	// Overwrite lets a new run replace a previous run's directory.
	Overwrite bool
	// Progress receives the progress bar (nil: no bar).
	Progress io.Writer
	// Log receives one-line status messages (nil: discarded).
	Log io.Writer
	// StopAfter, when positive, ends the process's work after that many
	// optimizer steps of this invocation as if interrupted (for tests of
	// resumption).
	StopAfter int
}

// Train runs (or resumes) a fine-tuning run and returns its summary.
func Train(ctx context.Context, opt Options) (*Summary, error) {
	logf := func(format string, a ...any) {
		if opt.Log != nil {
			fmt.Fprintf(opt.Log, format+"\n", a...)
		}
	}
	cfg, runDir, err := openRun(opt)
	if err != nil {
		return nil, err
	}
	unlock, err := lockRunDir(runDir)
	if err != nil {
		return nil, err
	}
	defer unlock()

	setup, err := Build(cfg, logf)
	if err != nil {
		return nil, err
	}
	defer setup.Close()
	data, err := LoadData(cfg, setup.Tokenizer)
	if err != nil {
		return nil, err
	}
	logf("data: %d training sequences (%d truncated, %d dropped), %d held out", len(data.Train), data.Stats.Truncated, data.Stats.Dropped, len(data.Eval))

	tc := cfg.Train
	steps := cfg.Steps()
	sum := &Summary{Method: cfg.Method, Steps: steps, Sparsity: setup.Sparsity, TrainableParams: setup.TrainableCount(),
		TrainExamples: len(data.Train), EvalExamples: len(data.Eval), TruncatedExample: data.Stats.Truncated,
		DroppedExamples: data.Stats.Dropped, ConfigHash: cfg.Hash()}
	evalSeqs := data.Eval
	if tc.EvalBatches > 0 && len(evalSeqs) > tc.EvalBatches*tc.BatchSize {
		evalSeqs = evalSeqs[:tc.EvalBatches*tc.BatchSize]
	}
	runner := model.NewRunner(setup.Params)
	evalLoss := func() (float64, error) { return HeldOutLoss(runner, evalSeqs, tc.BatchSize) }

	params := setup.Trainables
	opt2 := NewAdamW(params, tc.AdamBeta1, tc.AdamBeta2, tc.AdamEps, tc.WeightDecay)
	st := TrainState{ConfigHash: sum.ConfigHash}
	var graph *model.Graph[float32]
	var loader *datasets.Loader
	if steps > 0 {
		pad := max(setup.Tokenizer.EOS(), 0)
		if loader, err = datasets.NewLoader(data.Train, tc.BatchSize, cfg.Data.SeqLen, pad, uint64(tc.Seed)); err != nil {
			return nil, err
		}
		if graph, err = model.BuildGraph(setup.Params, model.GraphOptions[float32]{
			Batch: tc.BatchSize, Seq: cfg.Data.SeqLen, Adapter: setup.GraphAdapter}); err != nil {
			return nil, err
		}
		defer graph.Close()
		if opt.Resume != "" {
			ck, err := latestCheckpoint(runDir)
			if err != nil {
				return nil, err
			}
			if ck != "" {
				if st, err = loadCheckpoint(ck, params, opt2); err != nil {
					return nil, err
				}
				if st.ConfigHash != sum.ConfigHash {
					return nil, fmt.Errorf("trainer: %s was written by another config (hash %s, now %s)", ck, st.ConfigHash, sum.ConfigHash)
				}
				if err := loader.Restore(st.Loader); err != nil {
					return nil, err
				}
				logf("resuming %s at step %d", runDir, st.Step)
			}
		}
	}
	keep := -1
	if st.Step > 0 {
		keep = st.Step
	}
	mlog, history, err := openMetrics(runDir, keep)
	if err != nil {
		return nil, err
	}
	defer mlog.close()

	if st.Step > 0 {
		sum.InitialEvalLoss = st.InitialEvalLoss // a resumed run keeps the first measurement
	} else {
		if sum.InitialEvalLoss, err = evalLoss(); err != nil {
			return nil, err
		}
		logf("held-out loss before training: %.4f", sum.InitialEvalLoss)
	}
	st.InitialEvalLoss = sum.InitialEvalLoss

	sched := Schedule{Kind: tc.Schedule, Peak: tc.LR, Warmup: tc.WarmupSteps, Total: steps, MinRatio: tc.MinLRRatio}
	var bar *progressbar.ProgressBar
	if opt.Progress != nil && steps > 0 {
		bar = progressbar.NewOptions(steps,
			progressbar.OptionSetWriter(opt.Progress),
			progressbar.OptionSetDescription("train"),
			progressbar.OptionShowCount(),
			progressbar.OptionSetPredictTime(true),
			progressbar.OptionSetElapsedTime(true),
			progressbar.OptionSetWidth(24),
			progressbar.OptionThrottle(200*time.Millisecond),
			progressbar.OptionClearOnFinish())
		bar.Set(st.Step)
	}
	stp := &stepper{setup: setup, graph: graph, opt: opt2, accum: tc.GradAccum, clip: tc.GradClip}
	checkpoint := func() error {
		st.AdamSteps = opt2.Steps
		st.Loader = loader.State()
		return saveCheckpoint(runDir, params, opt2, st)
	}
	wallBefore := st.WallSeconds
	start := time.Now()
	ranHere := 0
	for st.Step < steps {
		if ctx.Err() != nil || (opt.StopAfter > 0 && ranHere == opt.StopAfter) {
			st.WallSeconds = wallBefore + time.Since(start).Seconds()
			if err := checkpoint(); err != nil {
				return nil, err
			}
			return nil, ErrInterrupted
		}
		stepStart := time.Now()
		lr := sched.LR(st.Step)
		res, err := stp.step(st.Step, lr, loader.Next)
		if errors.Is(err, errNonFinite) {
			ck, _ := latestCheckpoint(runDir)
			if ck == "" {
				ck = "none"
			}
			return nil, fmt.Errorf("trainer: %w at step %d; stopping (last good checkpoint: %s); try a lower train.lr", err, st.Step+1, ck)
		}
		if err != nil {
			return nil, err
		}
		loss, norm, tokens := res.loss, res.gradNorm, res.tokens
		st.Step++
		ranHere++
		st.Tokens += int64(tokens)
		st.LastLoss = loss
		m := Metrics{Step: st.Step, Loss: loss, LR: lr, GradNorm: norm,
			TokensPerSecond: float64(tokens) / time.Since(stepStart).Seconds(),
			Elapsed:         wallBefore + time.Since(start).Seconds()}
		if (tc.EvalEvery > 0 && st.Step%tc.EvalEvery == 0) || st.Step == steps {
			el, err := evalLoss()
			if err != nil {
				return nil, err
			}
			m.EvalLoss = &el
			logf("step %d: held-out loss %.4f", st.Step, el)
		}
		if st.Step%max(tc.LogEvery, 1) == 0 || m.EvalLoss != nil || st.Step == steps {
			if err := mlog.write(m); err != nil {
				return nil, err
			}
			history = append(history, m)
		}
		if bar != nil {
			bar.Describe(fmt.Sprintf("loss %.4f lr %.2e %.0f tok/s", loss, lr, m.TokensPerSecond))
			bar.Set(st.Step)
		}
		if tc.CheckpointEvery > 0 && st.Step%tc.CheckpointEvery == 0 && st.Step < steps {
			st.WallSeconds = wallBefore + time.Since(start).Seconds()
			if err := checkpoint(); err != nil {
				return nil, err
			}
		}
	}
	if bar != nil {
		bar.Finish()
	}
	sum.WallSeconds = wallBefore + time.Since(start).Seconds()
	if steps > 0 {
		sum.FinalTrainLoss = st.LastLoss
		sum.TokensPerSecond = float64(st.Tokens) / math.Max(sum.WallSeconds, 1e-9)
		if n := len(history); n > 0 && history[n-1].EvalLoss != nil {
			sum.EvalLoss = *history[n-1].EvalLoss
		}
		st.WallSeconds = sum.WallSeconds
		if err := checkpoint(); err != nil {
			return nil, err
		}
	} else {
		sum.EvalLoss = sum.InitialEvalLoss
	}
	if err := setup.Export(runDir); err != nil {
		return nil, err
	}
	sum.BaseBytes, sum.CompressedBytes = exportedSizes(runDir)
	if len(history) > 0 {
		if err := plotLoss(filepath.Join(runDir, LossPlot), fmt.Sprintf("%s: %s", cfg.Method, filepath.Base(runDir)), history); err != nil {
			return nil, err
		}
	}
	sum.Finished = true
	if err := writeJSON(filepath.Join(runDir, SummaryFile), sum); err != nil {
		return nil, err
	}
	logf("finished: held-out loss %.4f -> %.4f; run directory %s", sum.InitialEvalLoss, sum.EvalLoss, runDir)
	return sum, nil
}

// errNonFinite reports a NaN or infinite training loss.
var errNonFinite = errors.New("non-finite training loss")

// stepper runs optimizer updates: each is accum micro-batches of forward and
// backward (gradients accumulated in the graph), then the mean gradient is
// clipped and AdamW updates the trainable tensors.
type stepper struct {
	setup *Setup
	graph *model.Graph[float32]
	opt   *AdamW
	accum int
	clip  float64
}

// stepResult is what one update reports.
type stepResult struct {
	loss, gradNorm float64
	tokens         int
}

// step runs update number step (0-based) at learning rate lr on batches from
// next.
func (s *stepper) step(step int, lr float64, next func() datasets.Batch) (stepResult, error) {
	var r stepResult
	if err := s.graph.ZeroGrad(); err != nil {
		return r, err
	}
	for micro := 0; micro < s.accum; micro++ {
		b := next()
		s.setup.SetDropoutStep(step*s.accum + micro)
		l, err := s.graph.Step(b.Inputs, b.Targets, b.Mask)
		if err != nil {
			return r, err
		}
		r.loss += float64(l) / float64(s.accum)
		r.tokens += b.Tokens
	}
	if math.IsNaN(r.loss) || math.IsInf(r.loss, 0) {
		return r, fmt.Errorf("%w (%v)", errNonFinite, r.loss)
	}
	if err := s.setup.ReadGrads(s.graph); err != nil {
		return r, err
	}
	params := s.setup.Trainables
	if s.accum > 1 {
		ScaleGrads(params, 1/float64(s.accum))
	}
	r.gradNorm = ClipGrads(params, s.clip)
	return r, s.opt.Update(params, lr)
}

// openRun resolves the config and directory of a new or resumed run.
func openRun(opt Options) (*configs.Config, string, error) {
	if opt.Resume != "" {
		runDir := opt.Resume
		path := filepath.Join(runDir, ConfigFile)
		if _, err := os.Stat(path); err != nil {
			return nil, "", fmt.Errorf("trainer: cannot resume %s: %w", runDir, err)
		}
		if IsFinished(runDir) {
			return nil, "", fmt.Errorf("trainer: %s is already finished; nothing to resume", runDir)
		}
		cfg, err := configs.Load(path, nil)
		if err != nil {
			return nil, "", err
		}
		cfg.Output.Dir = runDir
		return cfg, runDir, nil
	}
	cfg := opt.Config
	if cfg == nil {
		return nil, "", errors.New("trainer: no config")
	}
	if err := cfg.Validate(); err != nil {
		return nil, "", err
	}
	if err := cfg.CheckPaths(); err != nil {
		return nil, "", err
	}
	runDir := cfg.Output.Dir
	if err := prepareRunDir(runDir, opt.Overwrite); err != nil {
		return nil, "", err
	}
	b, err := cfg.MarshalTOML()
	if err != nil {
		return nil, "", err
	}
	if err := atomicfile.WriteBytes(filepath.Join(runDir, ConfigFile), b); err != nil {
		return nil, "", err
	}
	return cfg, runDir, nil
}

// HeldOutLoss is the mean next-token loss over the loss-masked targets of
// seqs (token-weighted), computed by the inference path in batches.
func HeldOutLoss(r *model.Runner, seqs []datasets.Sequence, batch int) (float64, error) {
	var sum float64
	var count int
	v := r.P.Config.Vocab
	for i := 0; i < len(seqs); i += batch {
		chunk := seqs[i:min(i+batch, len(seqs))]
		tokens := make([][]int, 0, len(chunk))
		caches := make([]*model.Cache, 0, len(chunk))
		kept := chunk[:0:0]
		for _, s := range chunk {
			if len(s.Tokens) < 2 {
				continue
			}
			tokens = append(tokens, s.Tokens[:len(s.Tokens)-1])
			caches = append(caches, r.NewCache(len(s.Tokens)-1))
			kept = append(kept, s)
		}
		if len(tokens) == 0 {
			continue
		}
		logits, err := r.Forward(tokens, caches, true)
		if err != nil {
			return 0, err
		}
		for j, s := range kept {
			n := len(s.Tokens) - 1
			lp := make([]float32, n)
			kernels.TokenLogProbs(lp, logits[j], n, v, s.Tokens[1:])
			for t, l := range lp {
				if s.Loss[t+1] {
					sum -= float64(l)
					count++
				}
			}
		}
	}
	if count == 0 {
		return math.NaN(), errors.New("trainer: the held-out set has no loss tokens")
	}
	return sum / float64(count), nil
}
