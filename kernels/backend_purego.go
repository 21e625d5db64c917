//go:build purego

package kernels

import "gonum.org/v1/gonum/blas/gonum"

// The pure-Go fallback backend, selected with -tags purego.
var backend BLAS = gonum.Implementation{}

const backendName = "gonum"
