//go:build ignore

// gen_batch writes kernels_batch_amd64.s from internal/batchgen. Run with
//
//	go generate ./kernels/bitmap
package main

import (
	"fmt"
	"os"

	"github.com/salr-go/salr/kernels/bitmap/internal/batchgen"
)

func main() {
	if err := os.WriteFile("kernels_batch_amd64.s", []byte(batchgen.Generate()), 0o644); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
}
