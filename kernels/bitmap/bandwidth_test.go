package bitmap

import (
	"context"
	"testing"
	"testing/fstest"
)

func TestLastLevelCache(t *testing.T) {
	file := func(s string) *fstest.MapFile { return &fstest.MapFile{Data: []byte(s + "\n")} }
	zen3 := fstest.MapFS{
		"index0/level": file("1"), "index0/size": file("32K"),
		"index1/level": file("1"), "index1/size": file("32K"),
		"index2/level": file("2"), "index2/size": file("512K"),
		"index3/level": file("3"), "index3/size": file("32768K"),
	}
	if got, ok := lastLevelCache(zen3); !ok || got != 32<<20 {
		t.Errorf("Zen 3 sysfs: %d, %v; want %d, true", got, ok, 32<<20)
	}
	l2only := fstest.MapFS{
		"index0/level": file("1"), "index0/size": file("48K"),
		"index2/level": file("2"), "index2/size": file("2M"),
		"index3/level": file("3"), "index3/size": file("garbage"),
	}
	if got, ok := lastLevelCache(l2only); !ok || got != 2<<20 {
		t.Errorf("L2 with an unreadable L3: %d, %v; want %d, true", got, ok, 2<<20)
	}
	if got, ok := lastLevelCache(fstest.MapFS{}); ok || got != DefaultLLCBytes {
		t.Errorf("no sysfs: %d, %v; want %d, false", got, ok, DefaultLLCBytes)
	}
	if ColdBytesFor(32<<20) != 128<<20 {
		t.Errorf("ColdBytesFor(32 MB) = %d, want 128 MB", ColdBytesFor(32<<20))
	}
}

func TestSumWords(t *testing.T) {
	for _, n := range []int{0, 1, 7, 8, 9, 63, 64, 65, 1001, 4096 + 77} {
		v := make([]uint64, n)
		for i := range v {
			v[i] = uint64(i + 1)
		}
		if got, want := sumWords(v), uint64(n*(n+1)/2); got != want {
			t.Errorf("sumWords(1..%d) = %d, want %d", n, got, want)
		}
	}
}

func TestStreamBandwidth(t *testing.T) {
	r, err := StreamBandwidth(context.Background(), 1<<20, 3)
	if err != nil {
		t.Fatal(err)
	}
	if r.Case != "bandwidth" || r.Op != "read" || r.Bytes != 1<<20 || r.Reps != 3 || !(r.GBPS > 0) || r.GBPS != r.GBPerS ||
		r.MinMS > r.MedianMS || r.MedianMS > r.MaxMS {
		t.Errorf("%+v", r)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := StreamBandwidth(ctx, 1<<20, 3); err == nil {
		t.Error("cancelled: no error")
	}
}
