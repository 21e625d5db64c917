package sweep

import "syscall"

// workerProcAttr makes a worker receive SIGTERM when the sweep process dies
// (even by SIGKILL), so that it checkpoints and exits instead of running on
// unsupervised.
func workerProcAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Pdeathsig: syscall.SIGTERM}
}
