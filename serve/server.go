// Package serve is an OpenAI-compatible HTTP server for a model on the
// inference path (model.Runner over the compressed base): /v1/completions,
// /v1/chat/completions, /v1/models and /health, with streaming over
// server-sent events. One scheduler goroutine owns the Runner and decodes
// every running request in one batched forward per step (continuous
// batching: new requests are prefilled in the same forward as the decode
// steps of the running ones, between two steps); requests wait in a bounded
// queue and are refused with 503 when it is full.
package serve

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"net/http"
	"runtime/debug"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/salr-go/salr/model"
	"github.com/salr-go/salr/model/tokenizer"
)

// Options configures a Server.
type Options struct {
	// ModelName is the id /v1/models lists and responses carry.
	ModelName string
	// MaxBatch is the most sequences decoded together (default 16).
	MaxBatch int
	// QueueSize is the most requests waiting for a place in the batch
	// (default 64); one more is answered 503.
	QueueSize int
	// KVCacheBytes bounds the memory of the key/value caches of the requests
	// decoded together (0: no bound); a request waits until its cache fits,
	// and one that would not fit alone is refused with 400.
	KVCacheBytes int64
	// Chat renders chat requests; nil answers /v1/chat/completions with 400.
	Chat *ChatTemplate
	// NoChatReason says why Chat is nil, for the 400's message.
	NoChatReason string
	// Logger receives one line per request (default: slog.Default()).
	Logger *slog.Logger
}

// Server answers the API for one model. Create it with New, serve its
// Handler, and Close it when done.
type Server struct {
	runner  *model.Runner
	tok     tokenizer.Tokenizer
	opt     Options
	created int64
	queue   chan *job
	stop    chan struct{} // closed by Close
	done    chan struct{} // closed when the scheduler has returned
	closing atomic.Bool
	// submitting is held (shared) by submit while it queues a job, and
	// taken by Drain, so that no job enters the queue once it is drained.
	submitting sync.RWMutex
	once       sync.Once
	mux        *http.ServeMux
	nextID     atomic.Uint64
	stats      struct {
		steps, tokens, running, widest, pending, cacheBytes atomic.Int64
	}
}

// Stats counts the scheduler's work since the server started.
type Stats struct {
	// Steps is the number of batched forwards, Tokens the tokens they
	// generated.
	Steps, Tokens int64
	// Running is the number of requests in the batch now; Widest the most
	// requests one forward has decoded together.
	Running, Widest int
	// Queued is the number of requests waiting for a place in the batch.
	Queued int
	// CacheBytes is the memory of the running requests' key/value caches.
	CacheBytes int64
}

// Stats returns the scheduler's counts.
func (s *Server) Stats() Stats {
	return Stats{Steps: s.stats.steps.Load(), Tokens: s.stats.tokens.Load(), Running: int(s.stats.running.Load()),
		Widest: int(s.stats.widest.Load()), Queued: len(s.queue) + int(s.stats.pending.Load()), CacheBytes: s.stats.cacheBytes.Load()}
}

// New starts the scheduler of a server for the model p with tokenizer tok.
// p must not be used by anything else while the server runs.
func New(p *model.Params[float32], tok tokenizer.Tokenizer, opt Options) *Server {
	if opt.MaxBatch <= 0 {
		opt.MaxBatch = 16
	}
	if opt.QueueSize <= 0 {
		opt.QueueSize = 64
	}
	if opt.Logger == nil {
		opt.Logger = slog.Default()
	}
	if opt.ModelName == "" {
		opt.ModelName = "salr"
	}
	s := &Server{
		runner:  model.NewRunner(p),
		tok:     tok,
		opt:     opt,
		created: time.Now().Unix(),
		queue:   make(chan *job, opt.QueueSize),
		stop:    make(chan struct{}),
		done:    make(chan struct{}),
	}
	s.mux = http.NewServeMux()
	s.mux.HandleFunc("/v1/completions", s.post(s.completions))
	s.mux.HandleFunc("/v1/chat/completions", s.post(s.chatCompletions))
	s.mux.HandleFunc("/v1/models", s.get(s.models))
	s.mux.HandleFunc("/v1/models/{id...}", s.get(s.model))
	s.mux.HandleFunc("/health", s.get(s.health))
	s.mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		writeError(w, &apiError{Status: http.StatusNotFound, Message: "no endpoint " + r.URL.Path + " (the server has /v1/completions, /v1/chat/completions, /v1/models and /health)", Type: "invalid_request_error"})
	})
	go s.schedule()
	return s
}

// Handler returns the server's HTTP handler.
func (s *Server) Handler() http.Handler { return s.mux }

// Drain makes the server refuse new requests (503) while the ones admitted
// finish; /health then reports 503 too.
func (s *Server) Drain() {
	s.submitting.Lock()
	s.closing.Store(true)
	s.submitting.Unlock()
}

// Close cancels the requests still queued or running (their clients get an
// error, or the end of their stream) and stops the scheduler.
func (s *Server) Close() {
	s.Drain()
	s.once.Do(func() { close(s.stop) })
	<-s.done
}

// job is one request's generation, handed from its handler to the scheduler.
type job struct {
	ctx       context.Context
	prompt    []int
	maxTokens int
	sampler   *model.Sampler
	stopIDs   []int // tokens that end the text besides EOS
	text      *model.TextStream
	// events carries the text to the handler; its buffer holds one event per
	// token plus the last, so the scheduler never waits for a slow client.
	events chan event

	cacheBytes int64        // the size of its cache
	cache      *model.Cache // nil until admitted
	generated  []int
}

// event is a piece of a job's output; the last one has done set.
type event struct {
	delta  string
	done   bool
	finish string // "stop" or "length" when done
	tokens int    // completion tokens, when done
	err    error  // when done because the generation failed
}

var errShutdown = errors.New("the server is shutting down")

// submit queues a job; false when the queue is full or the server closing.
func (s *Server) submit(j *job) bool {
	s.submitting.RLock()
	defer s.submitting.RUnlock()
	if s.closing.Load() {
		return false
	}
	select {
	case s.queue <- j:
		return true
	default:
		return false
	}
}

// schedule runs the batch: it admits queued jobs up to MaxBatch (and while
// their caches fit KVCacheBytes, in order of arrival) between two steps and
// runs one forward per step over all running jobs (the prompts of new ones,
// the last token of the others).
func (s *Server) schedule() {
	defer close(s.done)
	var (
		running  []*job
		pending  *job // the next job, waiting for its cache to fit
		reserved int64
	)
	next := func(wait bool) *job {
		if j := pending; j != nil {
			pending = nil
			s.stats.pending.Store(0)
			return j
		}
		if !wait {
			select {
			case j := <-s.queue:
				return j
			default:
				return nil
			}
		}
		select {
		case j := <-s.queue:
			return j
		case <-s.stop:
			return nil
		}
	}
	for {
		for len(running) < s.opt.MaxBatch {
			j := next(len(running) == 0)
			if j == nil {
				break
			}
			if j.ctx.Err() != nil { // the client went away while waiting
				j.events <- event{done: true, err: j.ctx.Err()}
				continue
			}
			if s.opt.KVCacheBytes > 0 && len(running) > 0 && reserved+j.cacheBytes > s.opt.KVCacheBytes {
				pending = j
				s.stats.pending.Store(1)
				break
			}
			running = append(running, j)
			reserved += j.cacheBytes
		}
		select {
		case <-s.stop:
			for _, j := range running {
				j.events <- event{done: true, err: errShutdown, tokens: len(j.generated)}
			}
			if pending != nil {
				pending.events <- event{done: true, err: errShutdown}
			}
			s.cancelQueued()
			return
		default:
		}
		s.stats.cacheBytes.Store(reserved)
		running = s.step(running)
		reserved = 0
		for _, j := range running {
			reserved += j.cacheBytes
		}
		s.stats.running.Store(int64(len(running)))
		s.stats.cacheBytes.Store(reserved)
	}
}

// cancelQueued ends every job still in the queue.
func (s *Server) cancelQueued() {
	for {
		select {
		case j := <-s.queue:
			j.events <- event{done: true, err: errShutdown}
		default:
			return
		}
	}
}

// step runs one forward over the running jobs and returns those that go on.
func (s *Server) step(running []*job) []*job {
	tokens := make([][]int, 0, len(running))
	caches := make([]*model.Cache, 0, len(running))
	live := running[:0]
	for _, j := range running {
		if j.ctx.Err() != nil { // the client went away
			j.events <- event{done: true, err: j.ctx.Err(), tokens: len(j.generated)}
			continue
		}
		if j.cache == nil {
			j.cache = s.runner.NewCache(cacheLen(j.prompt, j.maxTokens))
			tokens = append(tokens, j.prompt)
		} else {
			tokens = append(tokens, j.generated[len(j.generated)-1:])
		}
		caches = append(caches, j.cache)
		live = append(live, j)
	}
	if len(live) == 0 {
		return live
	}
	s.stats.steps.Add(1)
	s.stats.tokens.Add(int64(len(live)))
	if int64(len(live)) > s.stats.widest.Load() {
		s.stats.widest.Store(int64(len(live)))
	}
	logits, err := s.forward(tokens, caches)
	if err != nil {
		for _, j := range live {
			j.events <- event{done: true, err: err, tokens: len(j.generated)}
		}
		return live[:0]
	}
	eos := s.tok.EOS()
	next := live[:0]
	for i, j := range live {
		id := j.sampler.Sample(logits[i])
		if (id == eos && eos >= 0) || slices.Contains(j.stopIDs, id) {
			j.finish("stop")
			continue
		}
		j.generated = append(j.generated, id)
		delta, stopped := j.text.Push(j.generated)
		switch {
		case stopped:
			j.send(delta)
			j.finish("stop")
		case len(j.generated) >= j.maxTokens:
			j.send(delta)
			j.finish("length")
		default:
			j.send(delta)
			next = append(next, j)
		}
	}
	return next
}

// forward runs the model; a panic in it (a bug) fails the step's requests
// instead of the server.
func (s *Server) forward(tokens [][]int, caches []*model.Cache) (logits [][]float32, err error) {
	defer func() {
		if p := recover(); p != nil {
			err = fmt.Errorf("serve: the forward pass failed: %v", p)
			s.opt.Logger.Error("forward pass panicked", "panic", fmt.Sprint(p), "stack", string(debug.Stack()))
		}
	}()
	return s.runner.Forward(tokens, caches, false)
}

func (j *job) send(delta string) {
	if delta != "" {
		j.events <- event{delta: delta}
	}
}

// finish sends the rest of the text and the end of the job.
func (j *job) finish(reason string) {
	j.send(j.text.Flush())
	j.events <- event{done: true, finish: reason, tokens: len(j.generated)}
	j.cache = nil
}

// newSampler is the request's sampler: its seed, else a random one.
func newSampler(p sampling) (*model.Sampler, error) {
	seed := rand.Uint64()
	if p.seed != nil {
		seed = uint64(*p.seed)
	}
	return model.NewSampler(p.temperature, p.topP, seed)
}

// cacheLen is the capacity of a job's cache: the last token generated is not
// fed back, so it needs no place.
func cacheLen(prompt []int, maxTokens int) int { return len(prompt) + maxTokens - 1 }

// cacheBytes is the size of a cache of n tokens.
func (s *Server) cacheBytes(n int) int64 {
	cfg := s.runner.P.Config
	return int64(cfg.Layers) * 2 * int64(n) * int64(cfg.KVDim()) * 4
}
