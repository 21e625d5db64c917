package serve

import (
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/salr-go/salr/datasets/assets"
	"github.com/salr-go/salr/model"
)

// openStories loads the stories260K model (llama2.c file and tok512.bin).
func openStories(t *testing.T) *model.Loaded {
	t.Helper()
	m, err := model.Open(filepath.Join(assets.ForTest(t), "stories260K", "stories260K.bin"), "")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { m.Close() })
	return m
}

// startServer serves the stories260K model on a real listener at 127.0.0.1.
func startServer(t *testing.T, opt Options) (*Server, *httptest.Server, *model.Loaded) {
	t.Helper()
	m := openStories(t)
	if opt.Logger == nil {
		opt.Logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	s := New(m.Params, m.Tokenizer, opt)
	hs := httptest.NewServer(s.Handler())
	t.Cleanup(func() {
		hs.Close()
		s.Close()
	})
	return s, hs, m
}

// post sends body as JSON and decodes the JSON answer into out.
func post(t *testing.T, url string, body any, out any) int {
	t.Helper()
	var data []byte
	switch b := body.(type) {
	case string:
		data = []byte(b)
	default:
		var err error
		if data, err = json.Marshal(body); err != nil {
			t.Fatal(err)
		}
	}
	resp, err := http.Post(url, "application/json", strings.NewReader(string(data)))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if err := json.NewDecoder(resp.Body).Decode(out); err != nil {
		t.Fatalf("%s: decoding the answer: %v", url, err)
	}
	return resp.StatusCode
}

const storiesPrompt = "Once upon a time"

// reference is what GenerateText (the salr-generate path) continues the
// prompt with, greedily.
func reference(t *testing.T, m *model.Loaded, prompt string, n int) string {
	t.Helper()
	s, err := model.NewSampler(0, 1, 0)
	if err != nil {
		t.Fatal(err)
	}
	out, err := model.GenerateText(model.NewRunner(m.Params), m.Tokenizer, []string{prompt}, model.TextOptions{MaxNewTokens: n, Sampler: s})
	if err != nil {
		t.Fatal(err)
	}
	return out[0]
}

// TestGreedyMatchesGenerate: a greedy completion, whole or streamed, alone or
// batched with others, is the text salr-generate prints, with usage counts.
func TestGreedyMatchesGenerate(t *testing.T) {
	s, hs, m := startServer(t, Options{})
	const n = 40
	want := reference(t, m, storiesPrompt, n)
	if !strings.HasPrefix(want, ", there was a little girl named Lily") {
		t.Fatalf("reference continuation %q", want)
	}
	var resp completionResponse
	if code := post(t, hs.URL+"/v1/completions", map[string]any{"prompt": storiesPrompt, "max_tokens": n, "temperature": 0}, &resp); code != 200 {
		t.Fatalf("status %d", code)
	}
	ids, _ := model.EncodePrompt(m.Tokenizer, storiesPrompt)
	if got := resp.Choices[0].Text; got != want {
		t.Errorf("whole: got %q, want %q", got, want)
	}
	if u := resp.Usage; u == nil || u.PromptTokens != len(ids) || u.CompletionTokens != n || u.TotalTokens != len(ids)+n {
		t.Errorf("usage %+v, want %d prompt and %d completion tokens", resp.Usage, len(ids), n)
	}
	if f := resp.Choices[0].FinishReason; f == nil || *f != "length" || resp.Object != "text_completion" {
		t.Errorf("finish reason %v, object %q", f, resp.Object)
	}
	// Eight streams at once, decoded in one batch.
	texts := make([]string, 8)
	var wg sync.WaitGroup
	errs := make([]error, len(texts))
	for i := range texts {
		wg.Go(func() {
			var b strings.Builder
			_, tokens, err := StreamCompletion(context.Background(), hs.Client(), hs.URL, map[string]any{
				"prompt": storiesPrompt, "max_tokens": n, "temperature": 0, "stream": true, "stream_options": map[string]bool{"include_usage": true},
			}, func(s string) { b.WriteString(s) })
			if err == nil && tokens != n {
				t.Errorf("stream %d: usage counts %d tokens, want %d", i, tokens, n)
			}
			texts[i], errs[i] = b.String(), err
		})
	}
	wg.Wait()
	for i := range texts {
		if errs[i] != nil {
			t.Errorf("stream %d: %v", i, errs[i])
		} else if texts[i] != want {
			t.Errorf("stream %d: got %q, want %q", i, texts[i], want)
		}
	}
	if st := s.Stats(); st.Widest < 2 {
		t.Errorf("the scheduler never decoded two requests together: %+v", st)
	}
}

// TestStop: a stop string ends the text before it, with finish reason stop.
func TestStop(t *testing.T) {
	_, hs, m := startServer(t, Options{})
	full := reference(t, m, storiesPrompt, 40)
	var resp completionResponse
	post(t, hs.URL+"/v1/completions", map[string]any{"prompt": storiesPrompt, "max_tokens": 40, "temperature": 0, "stop": []string{"Lily"}}, &resp)
	want := full[:strings.Index(full, "Lily")]
	if got := resp.Choices[0].Text; got != want || *resp.Choices[0].FinishReason != "stop" {
		t.Errorf("got %q (%s), want %q (stop)", got, *resp.Choices[0].FinishReason, want)
	}
	// Streamed, no piece of the stop string leaks out before the cut.
	var b strings.Builder
	_, _, err := StreamCompletion(context.Background(), hs.Client(), hs.URL, map[string]any{
		"prompt": storiesPrompt, "max_tokens": 40, "temperature": 0, "stop": "Lily", "stream": true,
	}, func(s string) { b.WriteString(s) })
	if err != nil || b.String() != want {
		t.Errorf("streamed: got %q, %v; want %q", b.String(), err, want)
	}
}

// TestLoad: concurrent streaming clients against the server, measured
// against one client; every request gets all its tokens, several are
// decoded together, and no goroutine is left once the clients are done.
func TestLoad(t *testing.T) {
	before := runtime.NumGoroutine()
	func() {
		s, hs, _ := startServer(t, Options{MaxBatch: 8})
		defer s.Close()
		defer hs.Close()
		o := LoadOptions{URL: hs.URL, Clients: 1, Requests: 4, Prompt: storiesPrompt, MaxTokens: 48, Client: hs.Client()}
		one, err := Load(context.Background(), o)
		if err != nil {
			t.Fatal(err)
		}
		o.Clients, o.Requests = 8, 4
		many, err := Load(context.Background(), o)
		if err != nil {
			t.Fatal(err)
		}
		for _, r := range []LoadResult{one, many} {
			if r.CompletionTokens != r.Requests*o.MaxTokens {
				t.Errorf("%d clients: %d tokens for %d requests of %d", r.Clients, r.CompletionTokens, r.Requests, o.MaxTokens)
			}
			t.Logf("%d clients: %d requests, %.0f tokens/s, time to first token p50 %.1f ms, p99 %.1f ms",
				r.Clients, r.Requests, r.TokensPerSecond, r.TTFTP50Ms, r.TTFTP99Ms)
		}
		if st := s.Stats(); st.Widest < 2 || st.Tokens != int64(one.CompletionTokens+many.CompletionTokens) {
			t.Errorf("stats %+v", st)
		}
		hs.Client().CloseIdleConnections()
	}()
	settleGoroutines(t, before)
}

// settleGoroutines waits until no more goroutines run than before, or fails
// after a while listing them.
func settleGoroutines(t *testing.T, before int) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for runtime.NumGoroutine() > before {
		if time.Now().After(deadline) {
			buf := make([]byte, 1<<20)
			t.Fatalf("%d goroutines, %d before:\n%s", runtime.NumGoroutine(), before, buf[:runtime.Stack(buf, true)])
		}
		runtime.Gosched()
		time.Sleep(10 * time.Millisecond)
	}
}

// waitFor polls cond until it holds, or fails after a while.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(2 * time.Millisecond)
	}
}

// openStream starts a streaming request and returns once its first text
// chunk has arrived; cancel ends it from the client's side.
func openStream(t *testing.T, url string, maxTokens int) (cancel func(), done <-chan error) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	first := make(chan struct{})
	errc := make(chan error, 1)
	var once sync.Once
	go func() {
		_, _, err := StreamCompletion(ctx, http.DefaultClient, url, map[string]any{
			"prompt": storiesPrompt, "max_tokens": maxTokens, "temperature": 0, "stream": true,
		}, func(string) { once.Do(func() { close(first) }) })
		once.Do(func() { close(first) })
		errc <- err
	}()
	<-first
	return cancel, errc
}

// TestDisconnect: clients that go away mid-stream leave the batch, and no
// goroutine of theirs is left.
func TestDisconnect(t *testing.T) {
	before := runtime.NumGoroutine()
	func() {
		s, hs, _ := startServer(t, Options{})
		defer s.Close()
		defer hs.Close()
		var cancels []func()
		var dones []<-chan error
		for range 6 {
			cancel, done := openStream(t, hs.URL, 400)
			cancels, dones = append(cancels, cancel), append(dones, done)
		}
		for i, cancel := range cancels {
			cancel()
			if err := <-dones[i]; err == nil {
				t.Errorf("stream %d ended normally after its client went away", i)
			}
		}
		waitFor(t, "the batch to empty", func() bool { st := s.Stats(); return st.Running == 0 && st.Queued == 0 })
		if st := s.Stats(); st.Tokens >= 6*400 {
			t.Errorf("the cancelled requests ran to the end: %+v", st)
		}
		http.DefaultClient.CloseIdleConnections()
	}()
	settleGoroutines(t, before)
}

// TestQueueFull: with one request decoding and one waiting, a third is
// answered 503 with an OpenAI-style error; after a drain, every request is.
func TestQueueFull(t *testing.T) {
	s, hs, _ := startServer(t, Options{MaxBatch: 1, QueueSize: 1})
	cancel, done := openStream(t, hs.URL, 400)
	waiting := make(chan int, 1)
	go func() {
		var resp completionResponse
		waiting <- post(t, hs.URL+"/v1/completions", map[string]any{"prompt": storiesPrompt, "max_tokens": 4}, &resp)
	}()
	waitFor(t, "a queued request", func() bool { return s.Stats().Queued == 1 })
	var e struct{ Error apiError }
	if code := post(t, hs.URL+"/v1/completions", map[string]any{"prompt": storiesPrompt, "max_tokens": 4}, &e); code != 503 || e.Error.Type != "server_error" || !strings.Contains(e.Error.Message, "queue is full") {
		t.Errorf("queue full: status %d, error %+v", code, e.Error)
	}
	cancel()
	<-done
	if code := <-waiting; code != 200 {
		t.Errorf("the queued request got %d", code)
	}
	s.Drain()
	if code := post(t, hs.URL+"/v1/completions", map[string]any{"prompt": storiesPrompt, "max_tokens": 4}, &e); code != 503 || !strings.Contains(e.Error.Message, "shutting down") {
		t.Errorf("draining: status %d, error %+v", code, e.Error)
	}
	var h map[string]string
	resp, err := http.Get(hs.URL + "/health")
	if err != nil {
		t.Fatal(err)
	}
	json.NewDecoder(resp.Body).Decode(&h)
	resp.Body.Close()
	if resp.StatusCode != 503 || h["status"] != "shutting down" {
		t.Errorf("health while draining: %d %v", resp.StatusCode, h)
	}
}

// TestBadRequests: each bad request gets its status and an OpenAI-style
// error naming the parameter.
func TestBadRequests(t *testing.T) {
	_, hs, _ := startServer(t, Options{NoChatReason: "no chat_template"})
	long := make([]int, 600)
	for i := range long {
		long[i] = 300
	}
	for _, c := range []struct {
		path  string
		body  any
		code  int
		param string
		in    string
	}{
		{"/v1/completions", `{"prompt": "x",`, 400, "", "not valid JSON"},
		{"/v1/completions", ``, 400, "", "empty"},
		{"/v1/completions", `{"max_tokens": 4}`, 400, "prompt", "prompt is required"},
		{"/v1/completions", map[string]any{"prompt": long}, 400, "prompt", "maximum context length is 512 tokens, but the prompt has 600"},
		{"/v1/completions", map[string]any{"prompt": "x", "max_tokens": 600}, 400, "max_tokens", "maximum context length is 512 tokens"},
		{"/v1/completions", map[string]any{"prompt": "x", "max_tokens": 0}, 400, "max_tokens", "want 1 or more"},
		{"/v1/completions", map[string]any{"prompt": "x", "n": 2}, 400, "n", "only n = 1"},
		{"/v1/completions", map[string]any{"prompt": "x", "temperature": -1}, 400, "temperature", "[0, 2]"},
		{"/v1/completions", map[string]any{"prompt": "x", "top_p": 0}, 400, "top_p", "(0, 1]"},
		{"/v1/completions", map[string]any{"prompt": "x", "stop": []string{"a", "b", "c", "d", "e"}}, 400, "stop", "at most 4"},
		{"/v1/completions", map[string]any{"prompt": []int{1, 512}}, 400, "prompt", "prompt[1] = 512 is not a token id"},
		{"/v1/completions", map[string]any{"prompt": []string{"a", "b"}}, 400, "prompt", "only one prompt"},
		{"/v1/chat/completions", map[string]any{"messages": []any{map[string]string{"role": "user", "content": "hi"}}}, 400, "messages", "no chat template"},
		{"/v1/embeddings", map[string]any{"input": "x"}, 404, "", "no endpoint /v1/embeddings"},
	} {
		var e struct{ Error *apiError }
		code := post(t, hs.URL+c.path, c.body, &e)
		param := ""
		if e.Error != nil && e.Error.Param != nil {
			param = *e.Error.Param
		}
		if code != c.code || e.Error == nil || param != c.param || !strings.Contains(e.Error.Message, c.in) {
			t.Errorf("%s %v: status %d, error %+v (param %q); want %d, param %q, message with %q", c.path, c.body, code, e.Error, param, c.code, c.param, c.in)
		}
	}
	resp, err := http.Get(hs.URL + "/v1/completions")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 405 {
		t.Errorf("GET /v1/completions: %d, want 405", resp.StatusCode)
	}
	var models struct {
		Object string
		Data   []struct{ ID, Object string }
	}
	resp, err = http.Get(hs.URL + "/v1/models")
	if err != nil {
		t.Fatal(err)
	}
	json.NewDecoder(resp.Body).Decode(&models)
	resp.Body.Close()
	if models.Object != "list" || len(models.Data) != 1 || models.Data[0].ID != "salr" || models.Data[0].Object != "model" {
		t.Errorf("/v1/models: %+v", models)
	}
	for path, want := range map[string]int{"/v1/models/salr": 200, "/v1/models/gpt-4": 404} {
		resp, err := http.Get(hs.URL + path)
		if err != nil {
			t.Fatal(err)
		}
		var body map[string]any
		json.NewDecoder(resp.Body).Decode(&body)
		resp.Body.Close()
		if resp.StatusCode != want || (want == 200 && body["id"] != "salr") || (want == 404 && body["error"] == nil) {
			t.Errorf("GET %s: %d %v, want %d", path, resp.StatusCode, body, want)
		}
	}
}

// TestCompressedBase: the server gives the same greedy tokens on the
// bitmap-compressed projections as on the same weights stored dense.
func TestCompressedBase(t *testing.T) {
	m := openStories(t)
	texts := map[model.BaseFormat]string{}
	for _, f := range []model.BaseFormat{model.BaseDenseFP32, model.BaseBitmapFP32, model.BaseDenseBF16, model.BaseBitmapBF16} {
		p, err := model.WithBaseFormat(m.Params, f)
		if err != nil {
			t.Fatal(err)
		}
		if got := model.BaseFormatName(p.Layers[2].Proj[model.UpProj].Base); got != string(f) {
			t.Fatalf("%s: the base is stored as %s", f, got)
		}
		s := New(p, m.Tokenizer, Options{Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
		hs := httptest.NewServer(s.Handler())
		var resp completionResponse
		post(t, hs.URL+"/v1/completions", map[string]any{"prompt": storiesPrompt, "max_tokens": 40, "temperature": 0}, &resp)
		hs.Close()
		s.Close()
		texts[f] = resp.Choices[0].Text
	}
	if want := reference(t, m, storiesPrompt, 40); texts[model.BaseDenseFP32] != want || texts[model.BaseBitmapFP32] != want {
		t.Errorf("fp32: dense %q, bitmap %q, want %q", texts[model.BaseDenseFP32], texts[model.BaseBitmapFP32], want)
	}
	if texts[model.BaseBitmapBF16] != texts[model.BaseDenseBF16] || texts[model.BaseDenseBF16] == "" {
		t.Errorf("bf16: dense %q, bitmap %q", texts[model.BaseDenseBF16], texts[model.BaseBitmapBF16])
	}
}

// TestKVCacheBudget: requests whose caches do not fit together wait their
// turn, and one that would not fit alone is refused.
func TestKVCacheBudget(t *testing.T) {
	m := openStories(t)
	ids, _ := model.EncodePrompt(m.Tokenizer, storiesPrompt)
	cfg := m.Params.Config
	const n = 40
	one := int64(cfg.Layers) * 2 * int64(len(ids)+n-1) * int64(cfg.KVDim()) * 4
	s := New(m.Params, m.Tokenizer, Options{KVCacheBytes: 2*one + one/2, Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	hs := httptest.NewServer(s.Handler())
	defer s.Close()
	defer hs.Close()
	res, err := Load(context.Background(), LoadOptions{URL: hs.URL, Clients: 5, Requests: 2, Prompt: storiesPrompt, MaxTokens: n, Client: hs.Client()})
	if err != nil {
		t.Fatal(err)
	}
	if st := s.Stats(); res.CompletionTokens != 10*n || st.Widest > 2 || st.CacheBytes != 0 {
		t.Errorf("%d tokens, want %d; stats %+v (at most 2 requests at once)", res.CompletionTokens, 10*n, st)
	}
	var e struct{ Error apiError }
	if code := post(t, hs.URL+"/v1/completions", map[string]any{"prompt": storiesPrompt, "max_tokens": 500}, &e); code != 400 || !strings.Contains(e.Error.Message, "key/value cache") {
		t.Errorf("a request larger than the budget: %d %+v", code, e.Error)
	}
}
