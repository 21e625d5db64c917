package trainer

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"path/filepath"
	"strconv"
	"time"

	"github.com/salr-go/salr/adapters"
	"github.com/salr-go/salr/configs"
	"github.com/salr-go/salr/datasets"
	"github.com/salr-go/salr/internal/atomicfile"
	"github.com/salr-go/salr/kernels"
	"github.com/salr-go/salr/kernels/bitmap"
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
	// Progress receives the progress bars (pruning and the SVD, then the
	// training steps), for a terminal (nil, or an *os.File that is not a
	// terminal: no bar; Log then gets a status line every StatusEvery
	// instead).
	Progress io.Writer
	// Log receives one-line status messages (nil: discarded).
	Log io.Writer
	// StatusEvery is the interval of the status lines written to Log when
	// there is no bar (0: 30 s).
	StatusEvery time.Duration
	// StopAfter, when positive, ends the process's work after that many
	// optimizer steps of this invocation as if interrupted (for tests of
	// resumption).
	StopAfter int
	// Comm makes this process one rank of a data-parallel run (nil: a
	// single process); see Comm. Rank 0 alone writes the run directory,
	// logs and evaluates; Train returns a nil Summary on the other ranks.
	Comm Comm
}

// Train runs (or resumes) a fine-tuning run, then the evaluation its
// config's [eval] names (see evaluateRun), and returns its summary. Resuming
// a finished run whose evaluation did not finish does the evaluation.
func Train(ctx context.Context, opt Options) (*Summary, error) {
	opt.Comm = commOrSingle(opt.Comm)
	if opt.Comm.Rank() != 0 {
		return trainFollower(ctx, opt)
	}
	rep := &reporter{log: opt.Log, out: opt.Progress, every: opt.StatusEvery}
	cfg, runDir, unlock, err := openRun(opt, rep.logf)
	if err != nil {
		return nil, err
	}
	defer unlock()
	var sum *Summary
	if opt.Resume != "" && IsFinished(runDir) {
		sum, err = ReadSummary(runDir) // trained, evaluation pending (lockRun checked)
	} else {
		sum, err = train(ctx, cfg, runDir, opt, rep)
	}
	if err != nil {
		return nil, err
	}
	return evaluateRun(ctx, cfg, runDir, sum, rep, opt.Progress)
}

// train prepares the model, trains it and (rank 0 of a data-parallel run, or
// the single process) writes the run directory; the training model's memory
// is released when it returns.
func train(ctx context.Context, cfg *configs.Config, runDir string, opt Options, rep *reporter) (*Summary, error) {
	setup, err := build(cfg, rep.logf, opt.Progress)
	if err != nil {
		return nil, err
	}
	defer setup.Close()
	r, err := startTraining(setup, runDir, opt.Resume != "", rep, opt.Comm)
	if err != nil {
		return nil, err
	}
	defer r.close()
	defer restoreMemoryLimit(r.planMemory())
	err = r.loop(ctx, opt.StopAfter)
	rep.stop()
	if err != nil || r.comm.Rank() != 0 {
		return nil, err // rank 0 alone finishes the run directory
	}
	return r.finish()
}

// training is a run in progress: the prepared model, the optimizer and data
// position, and what has been logged.
type training struct {
	cfg     *configs.Config
	runDir  string
	setup   *Setup
	rep     *reporter
	sum     *Summary
	state   TrainState
	adam    *AdamW
	loader  *datasets.Loader
	graph   *model.Graph[float32]
	metrics *metricsLog
	history []Metrics
	// heldOut is the evaluated part of the held-out set (empty: disabled).
	heldOut []datasets.Sequence
	runner  *model.Runner
	// comm is the data-parallel communication (single: one process).
	comm Comm
	// wallBefore is the training time of earlier invocations; start is when
	// this invocation's loop began.
	wallBefore float64
	start      time.Time
}

// startTraining sets up the optimizer, data loader and graph of a prepared
// run, restores the latest checkpoint when resuming, opens metrics.jsonl and
// measures the held-out loss before training (a resumed run keeps the first
// measurement).
func startTraining(setup *Setup, runDir string, resume bool, rep *reporter, comm Comm) (*training, error) {
	cfg := setup.Config
	tc := cfg.Train
	data := setup.Data
	st := data.Stats
	comm = commOrSingle(comm)
	if err := checkRanks(cfg.Train.BatchSize, comm); err != nil {
		return nil, err
	}
	if comm.Size() > 1 {
		rep.logf("data parallel: %d ranks, %d of the %d sequences of every batch each", comm.Size(), cfg.Train.BatchSize/comm.Size(), cfg.Train.BatchSize)
	}
	rep.logf("kernels: %s", bitmap.CurrentPaths())
	rep.logf("precision: %s", precisionPhrase(tc.Precision))
	rep.logf("data: %d training sequences (%d truncated, %d dropped, %d with no answer tokens left after truncation), %d held out",
		len(data.Train), st.Truncated, st.Dropped, st.NoTarget, len(data.Eval))
	r := &training{cfg: cfg, runDir: runDir, setup: setup, rep: rep,
		sum: &Summary{Method: cfg.Method, Steps: cfg.Steps(), Sparsity: setup.Sparsity, TrainableParams: setup.TrainableCount(),
			TrainExamples: len(data.Train), EvalExamples: len(data.Eval), TruncatedExample: st.Truncated,
			DroppedExamples: st.Dropped, DroppedNoAnswer: st.NoTarget, ConfigHash: cfg.Hash(),
			Precision: tc.Precision, Paths: bitmap.CurrentPaths()},
		heldOut: heldOutSeqs(cfg, data),
		runner:  model.NewRunner(setup.Params),
		comm:    comm,
		adam:    NewAdamW(setup.Trainables, tc.AdamBeta1, tc.AdamBeta2, tc.AdamEps, tc.WeightDecay),
	}
	r.state.ConfigHash = r.sum.ConfigHash
	if comm.Rank() != 0 {
		r.heldOut = nil // rank 0 alone measures the held-out loss
	}
	r.sum.noHeldOut = len(r.heldOut) == 0
	if err := r.open(resume); err != nil {
		r.close()
		return nil, err
	}
	return r, nil
}

// open is startTraining's work after the struct is made; on error the
// caller closes r.
func (r *training) open(resume bool) error {
	cfg, tc := r.cfg, r.cfg.Train
	if r.sum.Steps > 0 {
		var err error
		pad := max(r.setup.Tokenizer.EOS(), 0)
		newLoader := datasets.NewLoader
		if cfg.Data.Packing {
			newLoader = datasets.NewPackedLoader
		}
		if r.loader, err = newLoader(r.setup.Data.Train, tc.BatchSize, cfg.Data.SeqLen, pad, uint64(tc.Seed)); err != nil {
			return err
		}
		prec, err := kernels.ParsePrecision(tc.Precision)
		if err != nil {
			return fmt.Errorf("train.precision: %w", err)
		}
		if tc.RouterAuxLossCoef > 0 && r.comm.Size() > 1 {
			return fmt.Errorf("trainer: train.router_aux_loss_coef = %s with %d processes: the load-balancing loss counts the experts' selections over the whole batch, which a data-parallel run does not gather (not supported yet; run one process)",
				strconv.FormatFloat(tc.RouterAuxLossCoef, 'g', -1, 64), r.comm.Size())
		}
		if r.graph, err = model.BuildGraph(r.setup.Params, model.GraphOptions[float32]{
			Batch: tc.BatchSize / r.comm.Size(), Seq: cfg.Data.SeqLen, Adapter: r.setup.GraphAdapter, ExpertAdapter: r.setup.GraphExpertAdapter, Packed: cfg.Data.Packing,
			GradientCheckpointing: tc.GradientCheckpointing, Precision: prec, LossWeight: r.comm.Size() > 1,
			Trainable: r.setup.GraphTrainable, RouterAuxLossCoef: tc.RouterAuxLossCoef}); err != nil {
			return err
		}
		if resume {
			if err := r.restore(); err != nil {
				return err
			}
		}
	}
	keep := -1
	if r.state.Step > 0 {
		keep = r.state.Step
	}
	var err error
	if r.comm.Rank() != 0 {
		return nil
	}
	if r.metrics, r.history, err = openMetrics(r.runDir, keep); err != nil {
		return err
	}
	if r.state.Step > 0 {
		r.sum.InitialEvalLoss = r.state.InitialEvalLoss // a resumed run keeps the first measurement
	} else if len(r.heldOut) > 0 {
		if r.sum.InitialEvalLoss, err = r.evalLoss(); err != nil {
			return err
		}
		r.rep.logf("held-out loss before training: %.4f", r.sum.InitialEvalLoss)
	}
	r.state.InitialEvalLoss = r.sum.InitialEvalLoss
	return nil
}

// restore loads the run's latest checkpoint, if any, into the trainables,
// the optimizer and the data loader.
func (r *training) restore() error {
	ck, err := latestCheckpoint(r.runDir)
	if err != nil || ck == "" {
		return err
	}
	st, err := loadCheckpoint(ck, r.setup.Trainables, r.adam, r.rep.logf)
	if err != nil {
		return err
	}
	if err := checkConfigHash(ck, st, r.sum.ConfigHash); err != nil {
		return err
	}
	if err := r.loader.Restore(st.Loader); err != nil {
		return err
	}
	r.state = st
	r.rep.logf("resuming %s at step %d", r.runDir, st.Step)
	return nil
}

// close releases the graph and metrics.jsonl.
func (r *training) close() {
	if r.metrics != nil {
		r.metrics.close()
	}
	if r.graph != nil {
		r.graph.Close()
	}
}

// planMemory computes the run's memory plan, logs it, sets the Go runtime's
// memory limit from it (unless GOMEMLIMIT is set) and returns the limit it
// replaced.
func (r *training) planMemory() (previous int64) {
	var opt *AdamW
	if r.graph != nil {
		opt = r.adam
	}
	mp := NewMemoryPlan(r.setup, r.graph, opt)
	limit, source, previous := setMemoryLimit(mp.Heap())
	r.sum.Memory = &Memory{Plan: mp, MappedBytes: mp.Mapped, GoMemoryLimitBytes: limit, GoMemoryLimitSource: source}
	r.rep.logf("%s", mp)
	r.rep.logf("%s", describeLimit(limit, source, "the plan's heap part and a margin"))
	return previous
}

// evalLoss is the held-out loss of the model as it is now (for
// lora-prune-dynamic: with its masked merged weights).
func (r *training) evalLoss() (float64, error) {
	if r.setup.dynamic != nil {
		defer r.setup.servePruned()()
	}
	return HeldOutLoss(r.runner, r.heldOut, r.cfg.Train.BatchSize)
}

// checkpoint saves the training state (rank 0; the other ranks hold the
// same state).
func (r *training) checkpoint() error {
	if r.comm.Rank() != 0 {
		return nil
	}
	r.state.WallSeconds = r.wallBefore + time.Since(r.start).Seconds()
	r.state.AdamSteps = r.adam.Steps
	r.state.Loader = r.loader.State()
	return saveCheckpoint(r.runDir, r.setup.Trainables, r.adam, r.state)
}

// loop runs the remaining optimizer steps, logging metrics, evaluating and
// checkpointing as configured. A cancelled ctx, or stopAfter steps done
// here, writes a checkpoint and returns ErrInterrupted.
func (r *training) loop(ctx context.Context, stopAfter int) error {
	tc := r.cfg.Train
	steps := r.sum.Steps
	sched := Schedule{Kind: tc.Schedule, Peak: tc.LR, Warmup: tc.WarmupSteps, Total: steps, MinRatio: tc.MinLRRatio}
	step := &stepper{setup: r.setup, graph: r.graph, opt: r.adam, accum: tc.GradAccum, clip: tc.GradClip,
		comm: r.comm, rows: tc.BatchSize, seq: r.cfg.Data.SeqLen}
	parallel := r.comm.Size() > 1
	r.wallBefore = r.state.WallSeconds
	r.start = time.Now()
	if steps > 0 {
		r.rep.begin(r.state.Step, steps)
	}
	ranHere := 0
	if parallel {
		defer func() {
			if m := step.reduceSummary(); m != "" {
				r.rep.logf("%s", m)
			}
		}()
	}
	for r.state.Step < steps {
		// Ranks agree on a signal through the step's allreduce (res.stop):
		// one rank alone leaving the loop would leave the others waiting.
		if (!parallel && ctx.Err() != nil) || (stopAfter > 0 && ranHere == stopAfter) {
			if err := r.checkpoint(); err != nil {
				return err
			}
			return ErrInterrupted
		}
		if r.setup.dynamic != nil && (r.state.Step%r.cfg.Sparsity.Every == 0 || ranHere == 0) {
			// A resumed run recomputes the masks where it resumes.
			changed, err := r.setup.updateMasks(r.state.Step)
			if err != nil {
				return err
			}
			if r.state.Step > 0 {
				r.rep.logf("step %d: masks recomputed, %d weights changed", r.state.Step, changed)
			}
		}
		stepStart := time.Now()
		lr := sched.LR(r.state.Step)
		res, err := step.step(r.state.Step, lr, r.loader.Next, ctx.Err() != nil)
		if errors.Is(err, errNonFinite) {
			ck, _ := latestCheckpoint(r.runDir)
			if ck == "" {
				ck = "none"
			}
			return fmt.Errorf("trainer: %w at step %d; stopping (last good checkpoint: %s); try a lower train.lr", err, r.state.Step+1, ck)
		}
		if err != nil {
			return err
		}
		r.state.Step++
		ranHere++
		r.state.Tokens += int64(res.tokens)
		r.state.LastLoss = res.loss
		m := Metrics{Step: r.state.Step, Loss: res.loss, RouterAuxLoss: res.routerAux, LR: lr, GradNorm: res.gradNorm,
			TokensPerSecond: float64(res.tokens) / time.Since(stepStart).Seconds(),
			Elapsed:         r.wallBefore + time.Since(r.start).Seconds()}
		r.rep.step(m, res.tokens)
		if len(r.heldOut) > 0 && ((tc.EvalEvery > 0 && m.Step%tc.EvalEvery == 0) || m.Step == steps) {
			el, err := r.evalLoss()
			if err != nil {
				return err
			}
			m.EvalLoss = &el
			r.rep.logf("step %d: held-out loss %.4f", m.Step, el)
		}
		if r.metrics != nil && (m.Step%max(tc.LogEvery, 1) == 0 || m.EvalLoss != nil || m.Step == steps) {
			if err := r.metrics.write(m); err != nil {
				return err
			}
			r.history = append(r.history, m)
		}
		if tc.CheckpointEvery > 0 && m.Step%tc.CheckpointEvery == 0 && m.Step < steps {
			if err := r.checkpoint(); err != nil {
				return err
			}
		}
		if res.stop && m.Step < steps {
			if err := r.checkpoint(); err != nil {
				return err
			}
			return ErrInterrupted
		}
	}
	return nil
}

// finish writes the final checkpoint, the exported model, loss.png and
// summary.json.
func (r *training) finish() (*Summary, error) {
	sum := r.sum
	sum.WallSeconds = r.wallBefore + time.Since(r.start).Seconds()
	if sum.Steps > 0 {
		sum.FinalTrainLoss = r.state.LastLoss
		sum.TokensPerSecond = float64(r.state.Tokens) / math.Max(sum.WallSeconds, 1e-9)
		if n := len(r.history); n > 0 && r.history[n-1].EvalLoss != nil {
			sum.EvalLoss = *r.history[n-1].EvalLoss
		}
		if err := r.checkpoint(); err != nil {
			return nil, err
		}
	} else {
		sum.EvalLoss = sum.InitialEvalLoss
	}
	if r.cfg.PrunesMerged() {
		if err := r.pruneMerged(); err != nil {
			return nil, err
		}
	}
	if err := r.setup.Export(r.runDir); err != nil {
		return nil, err
	}
	sum.BaseBytes, sum.CompressedBytes = exportedSizes(r.runDir)
	if len(r.history) > 0 {
		var initial *float64
		if len(r.heldOut) > 0 {
			initial = &sum.InitialEvalLoss
		}
		title := fmt.Sprintf("%s: %s", r.cfg.Method, filepath.Base(r.runDir))
		if err := plotLoss(filepath.Join(r.runDir, LossPlot), title, r.history, initial); err != nil {
			return nil, err
		}
	}
	sum.Finished = true
	if sum.Memory != nil {
		sum.Memory.PeakRSSBytes = peakRSS()
		r.rep.logf("peak RSS %.0f MiB (plan %.0f MiB)", mib(sum.Memory.PeakRSSBytes), mib(sum.Memory.Plan.Total))
	}
	if err := writeJSON(filepath.Join(r.runDir, SummaryFile), sum); err != nil {
		return nil, err
	}
	if len(r.heldOut) > 0 {
		r.rep.logf("finished: held-out loss %.4f -> %.4f; run directory %s", sum.InitialEvalLoss, sum.EvalLoss, r.runDir)
	} else {
		r.rep.logf("finished (no held-out set); run directory %s", r.runDir)
	}
	return sum, nil
}

// pruneMerged writes the trained adapters of a lora-prune(-dynamic) run to
// merged-adapter/, merges and prunes its model (Setup.PruneMerged) and
// measures the pruned model's held-out loss.
func (r *training) pruneMerged() error {
	// The trained adapters the model merges, kept for analysis and for
	// rebuilding the unpruned model (nothing loads them with the run).
	if len(r.setup.Adapters) > 0 {
		dir := filepath.Join(r.runDir, MergedAdapterDir)
		if err := os.MkdirAll(dir, 0o755); err != nil {
			return fmt.Errorf("trainer: %w", err)
		}
		if err := adapters.WriteNative(filepath.Join(dir, adapters.NativeFile), r.setup.Adapters); err != nil {
			return fmt.Errorf("trainer: writing the merged adapters: %w", err)
		}
	}
	if err := r.setup.PruneMerged(r.rep.logf); err != nil {
		return err
	}
	r.sum.Sparsity = r.setup.Sparsity
	if len(r.heldOut) == 0 {
		return nil
	}
	before := r.sum.EvalLoss
	el, err := r.evalLoss()
	if err != nil {
		return err
	}
	r.sum.EvalLoss, r.sum.EvalLossBeforePrune = el, &before
	r.rep.logf("held-out loss of the pruned merged model: %.4f (%.4f before the final pruning)", el, before)
	return nil
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
	// comm, when of more than one rank, splits every global batch of rows
	// sequences of seq tokens across the ranks (see stepParallel).
	comm      Comm
	rows, seq int
	// bucket is the allreduce buffer of small gradients (see reduceGrads).
	bucket []float32
	// reduceTime is the time spent in the reduces exchanges of gradients,
	// reduceCalls and reducedValues count their allreduces and values.
	reduceTime                 time.Duration
	reduces                    int
	reduceCalls, reducedValues int
}

// stepResult is what one update reports.
type stepResult struct {
	loss, gradNorm float64
	// routerAux is the routers' load-balancing loss (mean over the
	// micro-batches), nil without one.
	routerAux *float64
	tokens    int
	// stop: a rank was asked to stop (parallel runs).
	stop bool
}

// step runs update number step (0-based) at learning rate lr on batches from
// next; stop says this process was asked to stop (reported back in
// stepResult.stop after the ranks agree).
func (s *stepper) step(step int, lr float64, next func() datasets.Batch, stop bool) (stepResult, error) {
	if s.comm != nil && s.comm.Size() > 1 {
		return s.stepParallel(step, lr, next, stop)
	}
	var r stepResult
	if err := s.graph.ZeroGrad(); err != nil {
		return r, err
	}
	for micro := 0; micro < s.accum; micro++ {
		b := next()
		s.setup.SetDropoutStep(step*s.accum + micro)
		l, err := s.graph.StepPositions(b.Inputs, b.Targets, b.Positions, b.Mask)
		if err != nil {
			return r, err
		}
		r.loss += float64(l) / float64(s.accum)
		r.tokens += b.Tokens
		if aux, ok := s.graph.RouterAuxLoss(); ok {
			if r.routerAux == nil {
				r.routerAux = new(float64)
			}
			*r.routerAux += float64(aux) / float64(s.accum)
		}
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

// openRun resolves the config and directory of a new or resumed run, locks
// the directory (before anything in it changes) and removes the temporary
// files a killed process left there. Release the lock with the returned
// function.
func openRun(opt Options, logf func(string, ...any)) (*configs.Config, string, func(), error) {
	cfg, runDir, unlock, err := lockRun(opt)
	if err != nil {
		return nil, "", nil, err
	}
	removed, err := removeStale(runDir)
	if err != nil {
		unlock()
		return nil, "", nil, err
	}
	for _, path := range removed {
		logf("removed %s, left by an interrupted process", path)
	}
	return cfg, runDir, unlock, nil
}

// lockRun is openRun without the clean-up: a resumed run's directory is
// locked before its state is read; a new run's is locked, cleared with
// -overwrite, and given the config.
func lockRun(opt Options) (*configs.Config, string, func(), error) {
	if opt.Resume != "" {
		runDir := opt.Resume
		path := filepath.Join(runDir, ConfigFile)
		if _, err := os.Stat(path); err != nil {
			return nil, "", nil, fmt.Errorf("trainer: cannot resume %s: %w", runDir, err)
		}
		unlock, err := lockRunDir(runDir)
		if err != nil {
			return nil, "", nil, err
		}
		cfg, err := configs.Load(path, nil)
		if err != nil {
			unlock()
			return nil, "", nil, err
		}
		if IsFinished(runDir) && !EvalPending(runDir, cfg) {
			unlock()
			return nil, "", nil, fmt.Errorf("trainer: %s is already finished; nothing to resume", runDir)
		}
		if err := checkEval(cfg); err != nil {
			unlock()
			return nil, "", nil, err
		}
		cfg.Output.Dir = runDir
		if err := checkLatestCheckpoint(runDir, cfg.Hash()); err != nil {
			unlock()
			return nil, "", nil, err
		}
		return cfg, runDir, unlock, nil
	}
	cfg := opt.Config
	if cfg == nil {
		return nil, "", nil, errors.New("trainer: no config")
	}
	if err := cfg.Validate(); err != nil {
		return nil, "", nil, err
	}
	if err := cfg.CheckPaths(); err != nil {
		return nil, "", nil, err
	}
	if err := checkEval(cfg); err != nil {
		return nil, "", nil, err
	}
	b, err := cfg.MarshalTOML()
	if err != nil {
		return nil, "", nil, err
	}
	runDir := cfg.Output.Dir
	unlock, err := openNewRunDir(runDir, opt.Overwrite)
	if err != nil {
		return nil, "", nil, err
	}
	if err := atomicfile.WriteBytes(filepath.Join(runDir, ConfigFile), b); err != nil {
		unlock()
		return nil, "", nil, err
	}
	return cfg, runDir, unlock, nil
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
