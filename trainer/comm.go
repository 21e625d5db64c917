package trainer

import (
	"context"
	"errors"
	"fmt"
	"math"
	"path/filepath"
	"time"

	"github.com/salr-go/salr/configs"
	"github.com/salr-go/salr/datasets"
)

// Comm is the communication of a data-parallel run of Size ranks (one
// process each, e.g. started by mpirun): every rank trains the same
// adapters on its share of every global batch and the gradients are summed
// across ranks. internal/mpi implements it; nil means a single process.
type Comm interface {
	// Rank is this process's rank (0 writes the run directory).
	Rank() int
	// Size is the number of ranks.
	Size() int
	// AllreduceSum replaces buf by its elementwise sum over the ranks.
	AllreduceSum(buf []float32) error
}

// single is the Comm of one process.
type single struct{}

func (single) Rank() int                        { return 0 }
func (single) Size() int                        { return 1 }
func (single) AllreduceSum(buf []float32) error { return nil }

// commOrSingle is c, or the single-process Comm when c is nil.
func commOrSingle(c Comm) Comm {
	if c == nil {
		return single{}
	}
	return c
}

// checkRanks checks that the global batch splits evenly across the ranks.
func checkRanks(batchSize int, c Comm) error {
	if n := c.Size(); batchSize%n != 0 {
		return fmt.Errorf("trainer: train.batch_size %d is not divisible by the %d ranks (each rank takes an equal share of every global batch)", batchSize, n)
	}
	return nil
}

// shard is rank's share of the global batch b of rows rows of seq tokens:
// rows [rank·rows/size, (rank+1)·rows/size), with LossTokens counted over
// them.
func shard(b datasets.Batch, rows, seq, rank, size int) datasets.Batch {
	per := rows / size
	lo, hi := rank*per*seq, (rank+1)*per*seq
	s := datasets.Batch{Inputs: b.Inputs[lo:hi], Targets: b.Targets[lo:hi], Mask: b.Mask[lo:hi]}
	if b.Positions != nil {
		s.Positions = b.Positions[lo:hi]
	}
	for _, m := range s.Mask {
		if m != 0 {
			s.LossTokens++
		}
	}
	return s
}

// stepParallel is step for a run of several ranks: each rank runs forward
// and backward on its share of every micro-batch; its gradient (a masked
// mean over its loss tokens) is weighted by its share of the micro-batch's
// loss tokens, so that the sum over the ranks, taken with one allreduce of
// one flat buffer per step, is the masked mean over the whole micro-batch: the
// gradient a single process computes, up to summation order.
func (s *stepper) stepParallel(step int, lr float64, next func() datasets.Batch, stop bool) (stepResult, error) {
	var r stepResult
	params := s.setup.Trainables
	clear(s.flat)
	for micro := 0; micro < s.accum; micro++ {
		if err := s.graph.ZeroGrad(); err != nil {
			return r, err
		}
		b := next()
		local := shard(b, s.rows, s.seq, s.comm.Rank(), s.comm.Size())
		s.setup.SetDropoutStep(step*s.accum + micro)
		s.setup.SetDropoutRows(s.comm.Rank()*s.rows/s.comm.Size()*s.seq, s.rows*s.seq)
		l, err := s.graph.StepPositions(local.Inputs, local.Targets, local.Positions, local.Mask)
		if err != nil {
			return r, err
		}
		r.tokens += b.Tokens
		if err := s.setup.ReadGrads(s.graph); err != nil {
			return r, err
		}
		if s.flat == nil {
			n := 2
			for _, p := range params {
				n += len(p.Grad)
			}
			s.flat = make([]float32, n)
		}
		if local.LossTokens == 0 {
			continue // nothing of this rank counts in the loss
		}
		w := float64(local.LossTokens) / float64(b.LossTokens)
		off := 0
		for _, p := range params {
			dst := s.flat[off : off+len(p.Grad)]
			for j, g := range p.Grad {
				dst[j] += float32(w * float64(g))
			}
			off += len(p.Grad)
		}
		s.flat[len(s.flat)-2] += float32(w * float64(l))
	}
	if stop {
		s.flat[len(s.flat)-1] = 1
	}
	start := time.Now()
	if err := s.comm.AllreduceSum(s.flat); err != nil {
		return r, fmt.Errorf("trainer: step %d: %w", step+1, err)
	}
	s.reduceTime += time.Since(start)
	s.reduces++
	off := 0
	for _, p := range params {
		copy(p.Grad, s.flat[off:off+len(p.Grad)])
		off += len(p.Grad)
	}
	r.loss = float64(s.flat[len(s.flat)-2]) / float64(s.accum)
	r.stop = s.flat[len(s.flat)-1] > 0
	if math.IsNaN(r.loss) || math.IsInf(r.loss, 0) {
		return r, fmt.Errorf("%w (%v)", errNonFinite, r.loss)
	}
	if s.accum > 1 {
		ScaleGrads(params, 1/float64(s.accum))
	}
	r.gradNorm = ClipGrads(params, s.clip)
	return r, s.opt.Update(params, lr)
}

// trainFollower is Train on a rank other than 0: the same preparation and
// training steps, with nothing written (rank 0 writes the run directory,
// logs and evaluates). It reads the run's config (and, resuming, its latest
// checkpoint) from the run directory, which must be on a file system every
// rank sees.
func trainFollower(ctx context.Context, opt Options) (*Summary, error) {
	var cfg *configs.Config
	runDir := opt.Resume
	if runDir != "" {
		if IsFinished(runDir) {
			return nil, nil // trained; rank 0 does the pending evaluation
		}
		var err error
		if cfg, err = configs.Load(filepath.Join(runDir, ConfigFile), nil); err != nil {
			return nil, err
		}
		cfg.Output.Dir = runDir
	} else {
		cfg = opt.Config
		if cfg == nil {
			return nil, errors.New("trainer: no config")
		}
		if err := cfg.Validate(); err != nil {
			return nil, err
		}
		if err := cfg.CheckPaths(); err != nil {
			return nil, err
		}
		runDir = cfg.Output.Dir
	}
	rep := &reporter{}
	setup, err := build(cfg, rep.logf, nil)
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
	return nil, err
}

// reduceSummary describes the allreduce time of the steps run so far (it
// includes waiting for the slowest rank).
func (s *stepper) reduceSummary() string {
	if s.reduces == 0 {
		return ""
	}
	return fmt.Sprintf("allreduce: %d values (%.2f MB) per step, %.2f ms per step on average over %d steps, waiting for the slowest rank included",
		len(s.flat), float64(4*len(s.flat))/1e6, float64(s.reduceTime.Microseconds())/1e3/float64(s.reduces), s.reduces)
}
