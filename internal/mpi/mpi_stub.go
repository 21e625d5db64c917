//go:build !mpi

package mpi

import "fmt"

const enabled = false

// Init returns the single-rank world (the build has no MPI).
func Init() (*World, error) { return &World{rank: 0, size: 1}, nil }

// Finalize does nothing without MPI.
func (w *World) Finalize() error { return nil }

// AllreduceSum leaves buf as it is: the sum over one rank.
func (w *World) AllreduceSum(buf []float32) error { return nil }

// Bcast leaves buf as it is: rank 0 is the only rank.
func (w *World) Bcast(buf []float32, root int) error {
	if root != 0 {
		return fmt.Errorf("mpi: broadcast from rank %d of a single-rank world", root)
	}
	return nil
}

// Barrier returns at once.
func (w *World) Barrier() error { return nil }

// Abort has nothing to end but this process, which the caller exits.
func (w *World) Abort(code int) {}
