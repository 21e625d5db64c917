// Command salr-serve serves a model over an OpenAI-compatible HTTP API
// (/v1/completions, /v1/chat/completions, /v1/models, /health), with
// continuous batching over the compressed base (package serve).
//
//	salr-serve -run runs/quickstart
//	salr-serve -model /tmp/s260 -addr 127.0.0.1:8080
//
// SIGINT or SIGTERM stops accepting connections, lets the requests in flight
// finish (for up to -shutdown-timeout, then cancels them) and exits 0.
// Exit status: 1 when the model cannot be loaded or the address not
// listened on, 2 for bad usage.
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"time"

	"github.com/salr-go/salr/cmd/internal/cli"
	"github.com/salr-go/salr/model"
	"github.com/salr-go/salr/model/gguf"
	"github.com/salr-go/salr/serve"
	"github.com/salr-go/salr/trainer"
)

type options struct {
	cli.ModelFlags
	addr, name                 string
	maxBatch, queue, kvCacheMB int
	shutdownTimeout            time.Duration
}

func main() { cli.Main("salr-serve", command) }

func command(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	o, err := parseArgs(args, stdout)
	if err != nil {
		return err
	}
	return run(ctx, o, stderr, nil)
}

func parseArgs(args []string, stdout io.Writer) (options, error) {
	var o options
	fs := cli.NewFlagSet("salr-serve",
		"salr-serve -model PATH [-tokenizer PATH] [-addr HOST:PORT] [-name NAME] [-max-batch N] [-queue N] [-kv-cache-mb N] [-shutdown-timeout D]\nsalr-serve -run RUN_DIR [-addr HOST:PORT] [-name NAME] [-max-batch N] [-queue N] [-kv-cache-mb N] [-shutdown-timeout D]",
		"Serve a model, or a salr-train run's compressed model, over an OpenAI-compatible HTTP API:\n/v1/completions, /v1/chat/completions (with the model's chat template), /v1/models, /health.\nOne of -model and -run is required.")
	o.ModelFlags.Register(fs, "its compressed model, else its pruned base with its adapters")
	fs.StringVar(&o.addr, "addr", "127.0.0.1:8080", "address to listen on")
	fs.StringVar(&o.name, "name", "", "model id in /v1/models and responses (default: the base name of -model or -run)")
	fs.IntVar(&o.maxBatch, "max-batch", 16, "most requests decoded together")
	fs.IntVar(&o.queue, "queue", 64, "most requests waiting for a place in the batch; more are answered 503")
	fs.IntVar(&o.kvCacheMB, "kv-cache-mb", 4096, "most MiB of key/value cache for the requests decoded together (float32; 0: no limit); a request waits until its cache fits")
	fs.DurationVar(&o.shutdownTimeout, "shutdown-timeout", 30*time.Second, "on SIGINT/SIGTERM, how long requests in flight may run before they are cancelled")
	if err := cli.Parse(fs, args, stdout); err != nil {
		return o, err
	}
	if err := o.Check(); err != nil {
		return o, err
	}
	switch {
	case o.maxBatch < 1:
		return o, cli.UsageError(fmt.Sprintf("-max-batch %d: want 1 or more", o.maxBatch))
	case o.queue < 1:
		return o, cli.UsageError(fmt.Sprintf("-queue %d: want 1 or more", o.queue))
	case o.kvCacheMB < 0:
		return o, cli.UsageError(fmt.Sprintf("-kv-cache-mb %d: want 0 or more", o.kvCacheMB))
	case o.shutdownTimeout < 0:
		return o, cli.UsageError(fmt.Sprintf("-shutdown-timeout %v: want 0 or more", o.shutdownTimeout))
	}
	if o.name == "" {
		o.name = filepath.Base(filepath.Clean(o.Model + o.Run))
	}
	return o, nil
}

// run listens, loads the model and serves until ctx is cancelled; ready,
// when set, receives the address listened on once the server answers.
func run(ctx context.Context, o options, stderr io.Writer, ready chan<- string) error {
	log := slog.New(slog.NewTextHandler(stderr, nil))
	ln, err := net.Listen("tcp", o.addr)
	if err != nil {
		return err
	}
	defer ln.Close()
	m, tmplDir, err := open(o)
	if err != nil {
		return err
	}
	defer m.Close()
	opt := serve.Options{ModelName: o.name, MaxBatch: o.maxBatch, QueueSize: o.queue, KVCacheBytes: int64(o.kvCacheMB) << 20, Logger: log}
	tmpl, err := model.ChatTemplate(tmplDir)
	switch {
	case err != nil:
		return err
	case tmpl == "":
		opt.NoChatReason = "no chat_template in " + filepath.Join(tmplDir, "tokenizer_config.json")
	default:
		if opt.Chat, err = serve.DetectChatTemplate(tmpl); err != nil {
			opt.NoChatReason = err.Error()
		}
	}
	if opt.Chat != nil {
		log.Info("chat template", "format", opt.Chat.Name)
	} else {
		log.Warn("chat completions disabled", "reason", opt.NoChatReason)
	}
	s := serve.New(m.Params, m.Tokenizer, opt)
	defer s.Close()
	hs := &http.Server{Handler: s.Handler(), ReadHeaderTimeout: 10 * time.Second}
	served := make(chan error, 1)
	go func() { served <- hs.Serve(ln) }()
	log.Info("listening", "addr", ln.Addr().String(), "model", o.name, "max_batch", o.maxBatch, "queue", o.queue)
	if ready != nil {
		ready <- ln.Addr().String()
	}
	select {
	case err := <-served:
		return err
	case <-ctx.Done():
	}
	log.Info("shutting down: finishing the requests in flight", "timeout", o.shutdownTimeout)
	s.Drain()
	sctx, cancel := context.WithTimeout(context.Background(), o.shutdownTimeout)
	defer cancel()
	if err := hs.Shutdown(sctx); err != nil {
		log.Warn("cancelling the requests still running", "reason", err.Error())
		s.Close()
		hs.Close()
	}
	if err := <-served; err != nil && !errors.Is(err, http.ErrServerClosed) {
		return err
	}
	log.Info("stopped")
	return nil
}

// open loads the model and returns where its chat template may be (see
// model.ChatTemplate): a GGUF file, or the directory whose
// tokenizer_config.json may hold it.
func open(o options) (*model.Loaded, string, error) {
	if o.Run != "" {
		m, err := trainer.OpenRun(o.Run)
		if err != nil {
			return nil, "", err
		}
		dir := filepath.Join(o.Run, trainer.CompressedDir)
		if _, err := os.Stat(filepath.Join(dir, model.HFConfigFileName)); err != nil {
			dir = filepath.Join(o.Run, trainer.BaseDir)
		}
		return m, dir, nil
	}
	m, err := model.Open(o.Model, o.Tokenizer)
	if err != nil {
		return nil, "", err
	}
	tokPath := o.Tokenizer
	if tokPath == "" {
		if gguf.HasExtension(o.Model) {
			return m, o.Model, nil // its tokenizer.chat_template
		}
		tokPath = o.Model
	}
	dir := tokPath
	if st, err := os.Stat(tokPath); err == nil && !st.IsDir() {
		dir = filepath.Dir(tokPath)
	}
	return m, dir, nil
}
