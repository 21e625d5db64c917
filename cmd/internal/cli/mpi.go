package cli

import (
	"errors"
	"fmt"
	"io"

	"github.com/salr-go/salr/internal/mpi"
	"github.com/salr-go/salr/trainer"
)

// RunAsRank runs fn as one rank of the MPI job that started the process
// (a build with the tag mpi under mpirun or srun; one rank of one
// otherwise), with the world as fn's trainer.Comm. When fn fails on one rank
// of several, the others may be waiting in a collective: the error is printed
// naming the rank and the whole job is aborted, so no rank hangs. An
// interrupted run (trainer.ErrInterrupted) finishes normally on every rank.
func RunAsRank(name string, stderr io.Writer, fn func(world *mpi.World) error) error {
	world, err := mpi.Init()
	if err != nil {
		return err
	}
	err = fn(world)
	if err != nil && world.Size() > 1 && !errors.Is(err, trainer.ErrInterrupted) {
		fmt.Fprintf(stderr, "%s: rank %d of %d: %v; aborting the job\n", name, world.Rank(), world.Size(), err)
		world.Abort(1)
		return err
	}
	if ferr := world.Finalize(); err == nil {
		err = ferr
	}
	return err
}
