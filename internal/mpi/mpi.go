// Package mpi is the message passing of a data-parallel run: the ranks of
// MPI_COMM_WORLD, a float32 sum allreduce, a broadcast, a barrier and an
// abort. Built with the tag mpi it binds Open MPI through cgo (Debian's
// libopenmpi-dev); without the tag it is a single rank and needs no MPI, so
// the default build and its tests have no MPI dependency.
//
// Errors of MPI calls are returned (the communicator's error handler is
// MPI_ERRORS_RETURN). A rank that fails should call Abort, which ends the
// job on every rank instead of leaving the others waiting in a collective.
package mpi

// Enabled reports whether the package was built with MPI (the tag mpi).
const Enabled = enabled

// World is the communicator of all the job's ranks.
type World struct {
	rank, size int
}

// Rank is this process's rank, 0 ≤ Rank < Size.
func (w *World) Rank() int { return w.rank }

// Size is the number of ranks.
func (w *World) Size() int { return w.size }
