package main

import (
	"bufio"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/salr-go/salr/cmd/internal/cli"
	"github.com/salr-go/salr/cmd/internal/cli/clitest"
	"github.com/salr-go/salr/datasets/assets"
	"github.com/salr-go/salr/model"
	"github.com/salr-go/salr/model/safetensors"
	"github.com/salr-go/salr/model/tokenizer"
	"github.com/salr-go/salr/serve"
)

// TestExitCodes runs the command's main in a child process.
func TestExitCodes(t *testing.T) {
	clitest.Child("salr-serve", main)
	missing := filepath.Join(t.TempDir(), "absent.bin")
	for _, c := range []struct {
		args           []string
		code           int
		stdout, stderr string
	}{
		{[]string{"-h"}, 0, "usage: salr-serve -model PATH", ""},
		{[]string{}, 2, "", "salr-serve: give exactly one of -model and -run\n"},
		{[]string{"-model", missing, "extra"}, 2, "", `unexpected argument "extra"`},
		{[]string{"-model", missing, "-max-batch", "0"}, 2, "", "-max-batch 0"},
		{[]string{"-run", "x", "-tokenizer", "y"}, 2, "", "-tokenizer applies to -model only"},
		{[]string{"-model", missing, "-addr", "127.0.0.1:0"}, 1, "", "absent.bin"},
		{[]string{"-model", missing, "-addr", "nonsense"}, 1, "", "nonsense"},
	} {
		code, stdout, stderr := clitest.Exec(t, "TestExitCodes", c.args...)
		if code != c.code || !strings.Contains(stdout, c.stdout) || !strings.Contains(stderr, c.stderr) {
			t.Errorf("salr-serve %q: exit %d, stdout %q, stderr %q; want exit %d, %q and %q", c.args, code, stdout, stderr, c.code, c.stdout, c.stderr)
		}
	}
}

// startRun runs the command on stories260K at 127.0.0.1 until the returned
// cancel (what SIGTERM does through cli.Run's context); done gets run's error.
func startRun(t *testing.T, timeout time.Duration) (url string, cancel func(), done <-chan error) {
	t.Helper()
	o := options{ModelFlags: cli.ModelFlags{Model: filepath.Join(assets.ForTest(t), "stories260K", "stories260K.bin")}, addr: "127.0.0.1:0", name: "stories",
		maxBatch: 4, queue: 4, shutdownTimeout: timeout}
	ctx, cancel := context.WithCancel(context.Background())
	ready := make(chan string, 1)
	errc := make(chan error, 1)
	go func() { errc <- run(ctx, o, io.Discard, ready) }()
	select {
	case addr := <-ready:
		return "http://" + addr, cancel, errc
	case err := <-errc:
		cancel()
		t.Fatal(err)
	}
	return "", nil, nil
}

// TestGracefulShutdown: on the signal, a stream in flight runs to its end
// and the command returns without error (exit 0); new connections are
// refused.
func TestGracefulShutdown(t *testing.T) {
	url, cancel, done := startRun(t, time.Minute)
	first := make(chan struct{})
	type result struct {
		tokens int
		err    error
	}
	res := make(chan result, 1)
	go func() {
		started := false
		_, n, err := serve.StreamCompletion(context.Background(), http.DefaultClient, url, map[string]any{
			"prompt": "Once upon a time", "max_tokens": 300, "temperature": 0, "stream": true, "stream_options": map[string]bool{"include_usage": true},
		}, func(string) {
			if !started {
				started = true
				close(first)
			}
		})
		res <- result{n, err}
	}()
	<-first
	cancel()
	if r := <-res; r.err != nil || r.tokens == 0 {
		t.Errorf("the stream in flight: %d tokens, %v", r.tokens, r.err)
	}
	if err := <-done; err != nil {
		t.Errorf("run: %v", err)
	}
	if _, err := http.Get(url + "/health"); err == nil {
		t.Error("the server still answers after shutting down")
	}
}

// TestShutdownTimeout: requests still running when the timeout ends are
// cancelled, and the command still returns without error.
func TestShutdownTimeout(t *testing.T) {
	url, cancel, done := startRun(t, 0)
	first := make(chan struct{})
	res := make(chan error, 1)
	go func() {
		started := false
		_, _, err := serve.StreamCompletion(context.Background(), http.DefaultClient, url, map[string]any{
			"prompt": "Once upon a time", "max_tokens": 500, "temperature": 0, "stream": true,
		}, func(string) {
			if !started {
				started = true
				close(first)
			}
		})
		res <- err
	}()
	<-first
	cancel()
	if err := <-done; err != nil {
		t.Errorf("run: %v", err)
	}
	if err := <-res; err == nil {
		t.Log("the stream finished before the cancellation reached it")
	}
}

// TestSIGTERM: the command in its own process, sent SIGTERM while a stream
// is in flight, finishes the stream and exits 0.
func TestSIGTERM(t *testing.T) {
	clitest.Child("salr-serve", main)
	stories := filepath.Join(assets.ForTest(t), "stories260K", "stories260K.bin")
	cmd := clitest.Command(t, "TestSIGTERM", "-model", stories, "-addr", "127.0.0.1:0")
	stderr, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer cmd.Process.Kill()
	lines := bufio.NewScanner(stderr)
	addr := ""
	for addr == "" && lines.Scan() {
		if _, rest, ok := strings.Cut(lines.Text(), "msg=listening addr="); ok {
			addr, _, _ = strings.Cut(rest, " ")
		}
	}
	if addr == "" {
		t.Fatalf("the server never said where it listens: %v", lines.Err())
	}
	var log strings.Builder
	logged := make(chan struct{})
	go func() {
		for lines.Scan() {
			log.WriteString(lines.Text() + "\n")
		}
		close(logged)
	}()
	first := make(chan struct{})
	res := make(chan error, 1)
	tokens := 0
	go func() {
		started := false
		var err error
		_, tokens, err = serve.StreamCompletion(context.Background(), http.DefaultClient, "http://"+addr, map[string]any{
			"prompt": "Once upon a time", "max_tokens": 400, "temperature": 0, "stream": true, "stream_options": map[string]bool{"include_usage": true},
		}, func(string) {
			if !started {
				started = true
				close(first)
			}
		})
		res <- err
	}()
	<-first
	if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	if err := <-res; err != nil || tokens != 400 {
		t.Errorf("the stream in flight: %d tokens, %v", tokens, err)
	}
	<-logged
	if err := cmd.Wait(); err != nil {
		t.Errorf("exit: %v\n%s", err, log.String())
	}
	if !strings.Contains(log.String(), "msg=stopped") {
		t.Errorf("log:\n%s", log.String())
	}
}

// TestChatTemplateFromModel: the chat template comes from the model
// directory's tokenizer_config.json, and chat requests are answered with it.
func TestChatTemplateFromModel(t *testing.T) {
	dir := t.TempDir()
	stories := filepath.Join(assets.ForTest(t), "stories260K")
	ck, err := model.Load(filepath.Join(stories, "stories260K.bin"))
	if err != nil {
		t.Fatal(err)
	}
	defer ck.Close()
	if err := model.WriteHF(dir, ck, safetensors.F32); err != nil {
		t.Fatal(err)
	}
	tok, err := tokenizer.LoadLlama2C(filepath.Join(stories, "tok512.bin"))
	if err != nil {
		t.Fatal(err)
	}
	if err := tok.WriteHF(dir); err != nil {
		t.Fatal(err)
	}
	cfgPath := filepath.Join(dir, "tokenizer_config.json")
	var cfg map[string]any
	data, err := os.ReadFile(cfgPath)
	if err != nil || json.Unmarshal(data, &cfg) != nil {
		t.Fatalf("reading %s: %v", cfgPath, err)
	}
	cfg["chat_template"] = "{% for message in messages %}{{'<|im_start|>' + message['role'] + '\\n' + message['content'] + '<|im_end|>' + '\\n'}}{% endfor %}"
	if data, err = json.Marshal(cfg); err != nil {
		t.Fatal(err)
	}
	os.WriteFile(cfgPath, data, 0o644)

	var log strings.Builder
	o := options{ModelFlags: cli.ModelFlags{Model: dir}, addr: "127.0.0.1:0", name: "s260", maxBatch: 2, queue: 2, shutdownTimeout: time.Second}
	ctx, cancel := context.WithCancel(context.Background())
	ready := make(chan string, 1)
	done := make(chan error, 1)
	go func() { done <- run(ctx, o, &syncWriter{w: &log}, ready) }()
	addr := <-ready
	resp, err := http.Post("http://"+addr+"/v1/chat/completions", "application/json",
		strings.NewReader(`{"messages": [{"role": "user", "content": "Once upon a time"}], "max_tokens": 8}`))
	if err != nil {
		t.Fatal(err)
	}
	var answer struct {
		Object  string
		Choices []struct {
			Message struct{ Role, Content string }
		}
	}
	json.NewDecoder(resp.Body).Decode(&answer)
	resp.Body.Close()
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if resp.StatusCode != 200 || answer.Object != "chat.completion" || answer.Choices[0].Message.Role != "assistant" {
		t.Errorf("status %d, answer %+v", resp.StatusCode, answer)
	}
	if !strings.Contains(log.String(), "format=chatml") {
		t.Errorf("log:\n%s", log.String())
	}
}

// syncWriter serialises writes to w.
type syncWriter struct {
	mu sync.Mutex
	w  io.Writer
}

func (s *syncWriter) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.w.Write(p)
}
