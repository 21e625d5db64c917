package trainer

import (
	"context"
	"encoding/json"
	"fmt"
	"math/bits"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"runtime/debug"
	"strings"
	"testing"
	"unsafe"

	"github.com/salr-go/salr/kernels/bitmap"
	"github.com/salr-go/salr/model"
	"github.com/salr-go/salr/model/safetensors"
)

// pow2 is the power-of-two size class of n elements.
func pow2(n int) int64 { return int64(1) << bits.Len(uint(n-1)) }

// TestMemoryPlanClosedForm checks every kind of the plan of SALR on
// stories260K (bitmap-bf16 bases at 50%, LoRA 4 + SVD 4 on all seven
// projections, batch 4 of 160 tokens) against bytes computed here from the
// shapes: dim 64, hidden 172, 5 layers, 8 heads of 8, 4 KV heads, vocabulary
// 512, tied head.
func TestMemoryPlanClosedForm(t *testing.T) {
	s, err := Build(tinyConfig(t, t.TempDir()), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	const batch, seq = 4, 160
	g, err := model.BuildGraph(s.Params, model.GraphOptions[float32]{Batch: batch, Seq: seq, Adapter: s.GraphAdapter})
	if err != nil {
		t.Fatal(err)
	}
	defer g.Close()
	tc := s.Config.Train
	opt := NewAdamW(s.Trainables, tc.AdamBeta1, tc.AdamBeta2, tc.AdamEps, tc.WeightDecay)
	got := NewMemoryPlan(s, g, opt)

	const c, f, layers, heads, kvHeads, hd, vocab, rank = 64, 172, 5, 8, 4, 8, 512, 4 + 4
	shapes := [][2]int{{64, 64}, {32, 64}, {32, 64}, {64, 64}, {f, c}, {f, c}, {c, f}} // q k v o gate up down
	var want MemoryPlan
	for _, sh := range shapes {
		out, in := int64(sh[0]), int64(sh[1])
		// bitmap-bf16: a 16-bit mask per 16 columns, a uint32 row pointer
		// per row and one more, 2 bytes per kept weight (half of them).
		want.Base += layers * (2*out*((in+15)/16) + 4*(out+1) + 2*out*in/2)
		want.Adapters += layers * 4 * (rank*(in+out) + rank)
		want.Gradients += layers * 4 * rank * (in + out)
	}
	want.Frozen = 4 * (vocab*c + 2*layers*c + c)
	want.Optimizer = 2 * want.Gradients
	n := batch * seq
	attn := 4 * (pow2(n*(heads+2*kvHeads)*hd) + int64(min(runtime.GOMAXPROCS(0), batch*heads))*pow2(2*64*seq))
	// The tied head is dense: blocks of min(n, 2048) rows against the whole
	// vocabulary; gathered x and dx rows, the logits, and float64 losses
	// and per-row state.
	head := 4*(2*pow2(n*c)+pow2(n*vocab)) + 8*(pow2(n)+pow2(3*n))
	want.Activations = g.Buffers().Bytes + attn + head
	want.Scratch = int64(bitmap.PipelineDepth) * int64(bitmap.PanelElems) * 4
	want.Total = want.Base + want.Frozen + want.Adapters + want.Gradients + want.Optimizer + want.Activations + want.Scratch
	want.Mapped = got.Mapped // checked below
	if got != want {
		t.Errorf("plan\n%+v, want\n%+v", got, want)
	}
	// The llama2.c file is mapped and its embedding and norms are views of
	// it; the projections were pruned into fresh memory.
	if got.Mapped != want.Frozen {
		t.Errorf("mapped %d bytes, want the frozen tensors' %d", got.Mapped, want.Frozen)
	}
	if b := s.Params.Layers[0].Proj[0].Base; model.BaseFormatName(b) != "bitmap-bf16" {
		t.Fatalf("base stored as %s", model.BaseFormatName(b))
	}
	if !strings.Contains(got.String(), "total") {
		t.Errorf("table %q", got.String())
	}
}

func ptr(b []byte) unsafe.Pointer { return unsafe.Pointer(&b[0]) }

func TestMappingsFindMappedFilePages(t *testing.T) {
	path := filepath.Join(t.TempDir(), "f")
	if err := os.WriteFile(path, make([]byte, 1<<16), 0o644); err != nil {
		t.Fatal(err)
	}
	m, err := safetensors.MapFile(path)
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	heap := make([]byte, 1<<16)
	maps := readMappings()
	if runtime.GOOS == "linux" && !maps.contains(ptr(m.Data[100:])) {
		t.Error("a mapped file's page is not found")
	}
	if maps.contains(ptr(heap)) {
		t.Error("a heap slice counts as mapped")
	}
}

// TestSummaryCarriesTheMemoryPlan trains a few steps and reads the plan,
// the peak RSS and the memory limit back from summary.json; the limit the
// run set is lifted when it returns.
func TestSummaryCarriesTheMemoryPlan(t *testing.T) {
	t.Setenv("GOMEMLIMIT", "")
	before := debug.SetMemoryLimit(-1)
	dir := filepath.Join(t.TempDir(), "run")
	var log strings.Builder
	if _, err := Train(context.Background(), Options{Config: tinyConfig(t, dir, "train.max_steps=2"), Log: &log}); err != nil {
		t.Fatal(err)
	}
	if after := debug.SetMemoryLimit(-1); after != before {
		t.Errorf("memory limit %d after the run, %d before", after, before)
	}
	b, err := os.ReadFile(filepath.Join(dir, SummaryFile))
	if err != nil {
		t.Fatal(err)
	}
	var sum struct {
		Memory struct {
			Plan    map[string]int64 `json:"plan"`
			PeakRSS int64            `json:"peak_rss_bytes"`
			Limit   int64            `json:"go_memory_limit_bytes"`
			Source  string           `json:"go_memory_limit_source"`
			Mapped  int64            `json:"mapped_bytes"`
		} `json:"memory"`
	}
	if err := json.Unmarshal(b, &sum); err != nil {
		t.Fatal(err)
	}
	mem := sum.Memory
	var total int64
	for _, k := range []string{"base", "frozen", "adapters", "gradients", "optimizer", "activations", "scratch"} {
		v, ok := mem.Plan[k]
		if !ok || v <= 0 {
			t.Errorf("plan[%q] = %d (present %v)", k, v, ok)
		}
		total += v
	}
	if mem.Plan["total"] != total || len(mem.Plan) != 8 {
		t.Errorf("plan %v: total %d, want %d", mem.Plan, mem.Plan["total"], total)
	}
	if runtime.GOOS == "linux" && mem.PeakRSS <= 0 {
		t.Errorf("peak RSS %d", mem.PeakRSS)
	}
	if mem.Source != "plan" || mem.Limit < total-mem.Mapped {
		t.Errorf("memory limit %d from %q, plan total %d", mem.Limit, mem.Source, total)
	}
	for _, line := range []string{"memory plan:", "Go memory limit: ", "peak RSS "} {
		if !strings.Contains(log.String(), line) {
			t.Errorf("log lacks %q:\n%s", line, log.String())
		}
	}
}

// TestUserGOMEMLIMITWins runs a training in a child process started with
// GOMEMLIMIT: the limit stays the user's, and summary.json says so.
func TestUserGOMEMLIMITWins(t *testing.T) {
	if dir := os.Getenv("SALR_TEST_MEMLIMIT_DIR"); dir != "" {
		if _, err := Train(context.Background(), Options{Config: tinyConfig(t, dir, "train.max_steps=1")}); err != nil {
			t.Fatal(err)
		}
		fmt.Printf("limit during the child's run end: %d\n", debug.SetMemoryLimit(-1))
		return
	}
	if testing.Short() {
		t.Skip("starts a child process")
	}
	dir := filepath.Join(t.TempDir(), "run")
	cmd := exec.Command(os.Args[0], "-test.run=^TestUserGOMEMLIMITWins$", "-test.count=1")
	cmd.Env = append(os.Environ(), "SALR_TEST_MEMLIMIT_DIR="+dir, "GOMEMLIMIT=3000MiB")
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("child: %v\n%s", err, out)
	}
	const limit = 3000 << 20
	if !strings.Contains(string(out), fmt.Sprintf("limit during the child's run end: %d\n", limit)) {
		t.Errorf("child output:\n%s", out)
	}
	b, err := os.ReadFile(filepath.Join(dir, SummaryFile))
	if err != nil {
		t.Fatal(err)
	}
	var sum Summary
	if err := json.Unmarshal(b, &sum); err != nil {
		t.Fatal(err)
	}
	if m := sum.Memory; m == nil || m.GoMemoryLimitBytes != limit || m.GoMemoryLimitSource != "GOMEMLIMIT" {
		t.Errorf("summary memory %+v", sum.Memory)
	}
}
