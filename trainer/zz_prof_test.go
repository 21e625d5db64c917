package trainer

import (
	"os"
	"runtime/pprof"
	"testing"
)

func TestZZProf(t *testing.T) {
	method := os.Getenv("ZZ_METHOD")
	if method == "" {
		t.Skip()
	}
	f, _ := os.Create("/tmp/cpu-" + method + ".pprof")
	pprof.StartCPUProfile(f)
	r, err := BenchTrain(BenchTrainOptions{Shape: "bench-60M", Method: method, Batch: 4, Seq: 256, Steps: 4, Warmup: 1, Seed: 1}, nil)
	pprof.StopCPUProfile()
	f.Close()
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("%+v", r)
}
