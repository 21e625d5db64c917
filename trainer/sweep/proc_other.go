//go:build !linux

package sweep

import "syscall"

// workerProcAttr has nothing to set outside Linux (no parent-death signal).
func workerProcAttr() *syscall.SysProcAttr { return nil }
