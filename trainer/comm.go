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

// bucketFloats bounds the allreduce buffer of a data-parallel step (4 MiB):
// gradients smaller than it are packed together into buckets of at most this
// many values, larger ones are reduced in place in pieces of it, so the
// exchange needs no copy of all the gradients (320 M values, 1.3 GB, at the
// 7B shape with the gsm8k preset) and a small model's step is one call.
const bucketFloats = 1 << 20

// stepParallel is step for a run of several ranks: each rank runs forward
// and backward on its share of every micro-batch, its loss (a masked mean
// over its loss tokens) weighted by its share of the micro-batch's loss
// tokens (model.GraphOptions.LossWeight), so that its gradients, accumulated
// in the graph over the micro-batches, add up over the ranks to the masked
// mean over the whole batch: the gradient a single process computes, up to
// rounding and summation order. The sum is taken in place, bucket by bucket
// (reduceGrads), with the loss and the stop flag in the first bucket.
func (s *stepper) stepParallel(step int, lr float64, next func() datasets.Batch, stop bool) (stepResult, error) {
	var r stepResult
	if err := s.graph.ZeroGrad(); err != nil {
		return r, err
	}
	var loss float64
	for micro := 0; micro < s.accum; micro++ {
		b := next()
		local := shard(b, s.rows, s.seq, s.comm.Rank(), s.comm.Size())
		w := 0.0
		if b.LossTokens > 0 {
			w = float64(local.LossTokens) / float64(b.LossTokens)
		}
		if err := s.graph.SetLossWeight(float32(w)); err != nil {
			return r, err
		}
		s.setup.SetDropoutStep(step*s.accum + micro)
		s.setup.SetDropoutRows(s.comm.Rank()*s.rows/s.comm.Size()*s.seq, s.rows*s.seq)
		l, err := s.graph.StepPositions(local.Inputs, local.Targets, local.Positions, local.Mask)
		if err != nil {
			return r, err
		}
		loss += float64(l)
		r.tokens += b.Tokens
	}
	if err := s.setup.ReadGrads(s.graph); err != nil {
		return r, err
	}
	params := s.setup.Trainables
	flag := float32(0)
	if stop {
		flag = 1
	}
	extra := []float32{float32(loss), flag}
	start := time.Now()
	if err := s.reduceGrads(params, extra); err != nil {
		return r, fmt.Errorf("trainer: step %d: %w", step+1, err)
	}
	s.reduceTime += time.Since(start)
	s.reduces++
	r.loss = float64(extra[0]) / float64(s.accum)
	r.stop = extra[1] > 0
	if math.IsNaN(r.loss) || math.IsInf(r.loss, 0) {
		return r, fmt.Errorf("%w (%v)", errNonFinite, r.loss)
	}
	if s.accum > 1 {
		ScaleGrads(params, 1/float64(s.accum))
	}
	r.gradNorm = ClipGrads(params, s.clip)
	return r, s.opt.Update(params, lr)
}

// reduceGrads replaces the gradients of params and the values extra by their
// sums over the ranks. Every rank packs the same buckets in the same order:
// extra and consecutive gradients that fit into s.bucket together (one
// allreduce each), a gradient larger than a bucket in place in pieces of
// bucketFloats.
func (s *stepper) reduceGrads(params []Param, extra []float32) error {
	if s.bucket == nil {
		s.bucket = make([]float32, 0, bucketFloats)
	}
	var packed [][]float32 // the slices whose values s.bucket holds, in order
	flush := func() error {
		if len(s.bucket) == 0 {
			return nil
		}
		if err := s.allreduce(s.bucket); err != nil {
			return err
		}
		off := 0
		for _, dst := range packed {
			off += copy(dst, s.bucket[off:])
		}
		s.bucket, packed = s.bucket[:0], packed[:0]
		return nil
	}
	add := func(v []float32) error {
		if len(v) > bucketFloats {
			if err := flush(); err != nil {
				return err
			}
			for lo := 0; lo < len(v); lo += bucketFloats {
				if err := s.allreduce(v[lo:min(lo+bucketFloats, len(v))]); err != nil {
					return err
				}
			}
			return nil
		}
		if len(s.bucket)+len(v) > bucketFloats {
			if err := flush(); err != nil {
				return err
			}
		}
		s.bucket = append(s.bucket, v...)
		packed = append(packed, v)
		return nil
	}
	if err := add(extra); err != nil {
		return err
	}
	for _, p := range params {
		if err := add(p.Grad); err != nil {
			return err
		}
	}
	return flush()
}

// allreduce sums buf over the ranks, counting the values and calls.
func (s *stepper) allreduce(buf []float32) error {
	s.reducedValues += len(buf)
	s.reduceCalls++
	return s.comm.AllreduceSum(buf)
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
	opt.Progress = nil
	return train(ctx, cfg, runDir, opt, &reporter{})
}

// reduceSummary describes the allreduce time of the steps run so far (it
// includes waiting for the slowest rank).
func (s *stepper) reduceSummary() string {
	if s.reduces == 0 {
		return ""
	}
	values, calls := s.reducedValues/s.reduces, s.reduceCalls/s.reduces
	return fmt.Sprintf("allreduce: %d values (%.2f MB) in %d buckets per step, %.2f ms per step on average over %d steps, waiting for the slowest rank included",
		values, float64(4*values)/1e6, calls, float64(s.reduceTime.Microseconds())/1e3/float64(s.reduces), s.reduces)
}
