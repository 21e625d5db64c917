//go:build mpi

package mpi

/*
#cgo pkg-config: ompi-c
#include <mpi.h>
#include <stdlib.h>

static int salr_init(int *provided) {
	// Open MPI's own handlers for SIGSEGV, SIGBUS, SIGFPE and SIGABRT would
	// replace the Go runtime's (nil dereferences are Go panics); keep Go's
	// unless the user chose otherwise.
	setenv("OMPI_MCA_opal_signal", "", 0);
	int flag = 0;
	int rc = MPI_Initialized(&flag);
	if (rc != MPI_SUCCESS) return rc;
	if (!flag) {
		rc = MPI_Init_thread(NULL, NULL, MPI_THREAD_SERIALIZED, provided);
		if (rc != MPI_SUCCESS) return rc;
	} else {
		MPI_Query_thread(provided);
	}
	return MPI_Comm_set_errhandler(MPI_COMM_WORLD, MPI_ERRORS_RETURN);
}
static int salr_rank(int *r) { return MPI_Comm_rank(MPI_COMM_WORLD, r); }
static int salr_size(int *s) { return MPI_Comm_size(MPI_COMM_WORLD, s); }
static int salr_allreduce_sum(float *buf, int n) {
	return MPI_Allreduce(MPI_IN_PLACE, buf, n, MPI_FLOAT, MPI_SUM, MPI_COMM_WORLD);
}
static int salr_bcast(float *buf, int n, int root) {
	return MPI_Bcast(buf, n, MPI_FLOAT, root, MPI_COMM_WORLD);
}
static int salr_barrier(void) { return MPI_Barrier(MPI_COMM_WORLD); }
static int salr_abort(int code) { return MPI_Abort(MPI_COMM_WORLD, code); }
static int salr_finalize(void) { return MPI_Finalize(); }
static int salr_error_string(int code, char *s) {
	int n = 0;
	MPI_Error_string(code, s, &n);
	return n;
}
static int salr_thread_serialized(void) { return MPI_THREAD_SERIALIZED; }
*/
import "C"

import (
	"fmt"
	"math"
	"sync"
	"unsafe"
)

const enabled = true

// mu serialises the MPI calls: goroutines move between OS threads, and
// MPI_THREAD_SERIALIZED allows calls from any thread, one at a time.
var mu sync.Mutex

// check turns an MPI return code into an error naming the call.
func check(call string, rc C.int) error {
	if rc == C.MPI_SUCCESS {
		return nil
	}
	buf := (*C.char)(C.malloc(C.MPI_MAX_ERROR_STRING + 1))
	defer C.free(unsafe.Pointer(buf))
	n := C.salr_error_string(rc, buf)
	return fmt.Errorf("mpi: %s: %s (error %d)", call, C.GoStringN(buf, n), int(rc))
}

// Init initialises MPI (once per process) with errors returned rather than
// fatal, and returns the world communicator.
func Init() (*World, error) {
	mu.Lock()
	defer mu.Unlock()
	var provided C.int
	if err := check("MPI_Init_thread", C.salr_init(&provided)); err != nil {
		return nil, err
	}
	if provided < C.salr_thread_serialized() {
		return nil, fmt.Errorf("mpi: the MPI library provides thread level %d, below MPI_THREAD_SERIALIZED", int(provided))
	}
	var r, s C.int
	if err := check("MPI_Comm_rank", C.salr_rank(&r)); err != nil {
		return nil, err
	}
	if err := check("MPI_Comm_size", C.salr_size(&s)); err != nil {
		return nil, err
	}
	return &World{rank: int(r), size: int(s)}, nil
}

// Finalize ends the process's use of MPI; call it once, on every rank.
func (w *World) Finalize() error {
	mu.Lock()
	defer mu.Unlock()
	return check("MPI_Finalize", C.salr_finalize())
}

// AllreduceSum replaces buf on every rank by its elementwise sum over the
// ranks. Every rank must call it with the same length.
func (w *World) AllreduceSum(buf []float32) error {
	if len(buf) == 0 {
		return nil
	}
	if len(buf) > math.MaxInt32 {
		return fmt.Errorf("mpi: allreduce of %d values (at most %d)", len(buf), math.MaxInt32)
	}
	mu.Lock()
	defer mu.Unlock()
	return check("MPI_Allreduce", C.salr_allreduce_sum((*C.float)(unsafe.Pointer(&buf[0])), C.int(len(buf))))
}

// Bcast copies root's buf to every rank's buf (same length on every rank).
func (w *World) Bcast(buf []float32, root int) error {
	if root < 0 || root >= w.size {
		return fmt.Errorf("mpi: broadcast from rank %d of %d", root, w.size)
	}
	if len(buf) == 0 {
		return nil
	}
	if len(buf) > math.MaxInt32 {
		return fmt.Errorf("mpi: broadcast of %d values (at most %d)", len(buf), math.MaxInt32)
	}
	mu.Lock()
	defer mu.Unlock()
	return check("MPI_Bcast", C.salr_bcast((*C.float)(unsafe.Pointer(&buf[0])), C.int(len(buf)), C.int(root)))
}

// Barrier returns when every rank has called it.
func (w *World) Barrier() error {
	mu.Lock()
	defer mu.Unlock()
	return check("MPI_Barrier", C.salr_barrier())
}

// Abort ends every rank of the job with exit status code (mpirun reports
// which rank aborted). It does not take the lock: another goroutine may be
// blocked in a collective that will never complete.
func (w *World) Abort(code int) {
	C.salr_abort(C.int(code))
}
