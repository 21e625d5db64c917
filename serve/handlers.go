package serve

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"time"

	"github.com/salr-go/salr/model"
)

// maxBodyBytes bounds a request body.
const maxBodyBytes = 8 << 20

// post wraps a handler of POST requests: other methods get 405, and the body
// is read (bounded) and decoded first.
func (s *Server) post(h func(w http.ResponseWriter, r *http.Request, req *completionRequest)) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodPost {
			w.Header().Set("Allow", http.MethodPost)
			writeError(w, &apiError{Status: http.StatusMethodNotAllowed, Message: r.Method + " " + r.URL.Path + ": use POST", Type: "invalid_request_error"})
			return
		}
		body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, maxBodyBytes))
		if err != nil {
			var tooBig *http.MaxBytesError
			if errors.As(err, &tooBig) {
				writeError(w, &apiError{Status: http.StatusRequestEntityTooLarge, Message: fmt.Sprintf("the request body exceeds %d bytes", maxBodyBytes), Type: "invalid_request_error"})
				return
			}
			writeError(w, badRequest("", "reading the request body: %v", err))
			return
		}
		var req completionRequest
		if e := decodeRequest(body, &req); e != nil {
			writeError(w, e)
			return
		}
		h(w, r, &req)
	}
}

// get wraps a handler of GET requests.
func (s *Server) get(h http.HandlerFunc) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodGet && r.Method != http.MethodHead {
			w.Header().Set("Allow", http.MethodGet)
			writeError(w, &apiError{Status: http.StatusMethodNotAllowed, Message: r.Method + " " + r.URL.Path + ": use GET", Type: "invalid_request_error"})
			return
		}
		h(w, r)
	}
}

func (s *Server) models(w http.ResponseWriter, r *http.Request) {
	writeJSON(w, http.StatusOK, map[string]any{"object": "list", "data": []map[string]any{s.modelInfo()}})
}

// model answers /v1/models/{id}: the served model, or 404.
func (s *Server) model(w http.ResponseWriter, r *http.Request) {
	if id := r.PathValue("id"); id != s.opt.ModelName {
		writeError(w, (&apiError{Status: http.StatusNotFound, Message: fmt.Sprintf("the model %q does not exist (this server serves %q)", id, s.opt.ModelName), Type: "invalid_request_error"}).withCode("model_not_found"))
		return
	}
	writeJSON(w, http.StatusOK, s.modelInfo())
}

func (s *Server) modelInfo() map[string]any {
	return map[string]any{"id": s.opt.ModelName, "object": "model", "created": s.created, "owned_by": "salr",
		"max_model_len": s.runner.P.Config.MaxPositions}
}

func (s *Server) health(w http.ResponseWriter, r *http.Request) {
	if s.closing.Load() {
		writeJSON(w, http.StatusServiceUnavailable, map[string]string{"status": "shutting down"})
		return
	}
	writeJSON(w, http.StatusOK, map[string]string{"status": "ok"})
}

func (s *Server) completions(w http.ResponseWriter, r *http.Request, req *completionRequest) {
	p, e := parseSampling(req)
	if e != nil {
		writeError(w, e)
		return
	}
	text, ids, e := completionPrompt(req.Prompt)
	if e != nil {
		writeError(w, e)
		return
	}
	if ids == nil {
		var err error
		if ids, err = model.EncodePrompt(s.tok, text); err != nil {
			writeError(w, badRequest("prompt", "encoding the prompt: %v", err))
			return
		}
	} else {
		for i, id := range ids {
			if id < 0 || id >= s.runner.P.Config.Vocab {
				writeError(w, badRequest("prompt", "prompt[%d] = %d is not a token id of the model (0 to %d)", i, id, s.runner.P.Config.Vocab-1))
				return
			}
		}
	}
	// OpenAI's completions default to 16 new tokens.
	s.generate(w, r, req, p, ids, 16, false)
}

func (s *Server) chatCompletions(w http.ResponseWriter, r *http.Request, req *completionRequest) {
	if s.opt.Chat == nil {
		writeError(w, badRequest("messages", "this model has no chat template the server can render (%s); use /v1/completions", s.opt.NoChatReason))
		return
	}
	p, e := parseSampling(req)
	if e != nil {
		writeError(w, e)
		return
	}
	msgs := make([]message, len(req.Messages))
	for i, m := range req.Messages {
		text, e := messageText(i, m)
		if e != nil {
			writeError(w, e)
			return
		}
		msgs[i] = message{m.Role, text}
	}
	prompt, err := s.opt.Chat.Render(msgs)
	if err != nil {
		writeError(w, badRequest("messages", "%v", err))
		return
	}
	ids, err := model.EncodePrompt(s.tok, prompt)
	if err != nil {
		writeError(w, badRequest("messages", "encoding the messages: %v", err))
		return
	}
	p.stops = append(p.stops, s.opt.Chat.Stop)
	// The end of a turn is often a special token, which decoding skips: it
	// stops as a token too.
	if end, err := s.tok.Encode(s.opt.Chat.Stop); err == nil && len(end) == 1 {
		p.stopIDs = end
	}
	// Chat completions default to the rest of the context.
	s.generate(w, r, req, p, ids, 0, true)
}

// generate runs a request's generation and answers it, streamed or whole.
// defaultMax is the max_tokens when the request gives none (0: the rest of
// the context).
func (s *Server) generate(w http.ResponseWriter, r *http.Request, req *completionRequest, p sampling, prompt []int, defaultMax int, chat bool) {
	start := time.Now()
	ctxLen := s.runner.P.Config.MaxPositions
	if len(prompt) == 0 {
		writeError(w, badRequest("prompt", "the prompt is empty and the tokenizer adds no BOS"))
		return
	}
	param := "prompt"
	if chat {
		param = "messages"
	}
	if ctxLen > 0 && len(prompt) >= ctxLen {
		writeError(w, badRequest(param, "this model's maximum context length is %d tokens, but the prompt has %d tokens, leaving no room for a completion", ctxLen, len(prompt)).withCode("context_length_exceeded"))
		return
	}
	maxTokens := p.maxTokens
	if maxTokens == 0 {
		maxTokens = defaultMax
		if ctxLen > 0 && (maxTokens == 0 || len(prompt)+maxTokens > ctxLen) {
			maxTokens = ctxLen - len(prompt)
		}
		if maxTokens == 0 { // no context limit and no default
			maxTokens = 256
		}
	} else if ctxLen > 0 && len(prompt)+maxTokens > ctxLen {
		writeError(w, badRequest("max_tokens", "this model's maximum context length is %d tokens, but %d tokens were requested (%d in the prompt, %d for the completion); reduce the prompt or max_tokens", ctxLen, len(prompt)+maxTokens, len(prompt), maxTokens).withCode("context_length_exceeded"))
		return
	}
	need := s.cacheBytes(cacheLen(prompt, maxTokens))
	if s.opt.KVCacheBytes > 0 && need > s.opt.KVCacheBytes {
		writeError(w, badRequest("max_tokens", "%d tokens (%d in the prompt, %d for the completion) need %.1f MiB of key/value cache, more than the server's limit of %.1f MiB; lower max_tokens or the prompt",
			len(prompt)+maxTokens, len(prompt), maxTokens, float64(need)/(1<<20), float64(s.opt.KVCacheBytes)/(1<<20)).withCode("context_length_exceeded"))
		return
	}
	sampler, err := newSampler(p)
	if err != nil {
		writeError(w, badRequest("temperature", "%v", err))
		return
	}
	j := &job{
		ctx:        r.Context(),
		prompt:     prompt,
		maxTokens:  maxTokens,
		cacheBytes: need,
		sampler:    sampler,
		stopIDs:    p.stopIDs,
		text:       model.NewTextStream(s.tok, prompt, p.stops),
		events:     make(chan event, maxTokens+2),
	}
	if !s.submit(j) {
		msg := "the server is busy: its request queue is full; retry later"
		if s.closing.Load() {
			msg = "the server is shutting down"
		}
		w.Header().Set("Retry-After", "1")
		writeError(w, (&apiError{Status: http.StatusServiceUnavailable, Message: msg, Type: "server_error"}).withCode("overloaded"))
		return
	}
	id := fmt.Sprintf("%s-%d-%d", map[bool]string{false: "cmpl", true: "chatcmpl"}[chat], s.created, s.nextID.Add(1))
	out := responder{s: s, w: w, id: id, chat: chat, promptTokens: len(prompt)}
	var (
		ev   event
		ttft time.Duration
	)
	if req.Stream {
		ev, ttft = out.stream(r, j, req.StreamOptions != nil && req.StreamOptions.IncludeUsage)
	} else {
		ev, ttft = out.whole(r, j)
	}
	attrs := []any{"id", id, "prompt_tokens", len(prompt), "completion_tokens", ev.tokens, "stream", req.Stream,
		"ttft_ms", msec(ttft), "ms", msec(time.Since(start))}
	switch {
	case ev.err != nil:
		s.opt.Logger.Info("request ended early", append(attrs, "reason", ev.err.Error())...)
	default:
		s.opt.Logger.Info("request", append(attrs, "finish_reason", ev.finish)...)
	}
}

// responder writes one request's answer.
type responder struct {
	s            *Server
	w            http.ResponseWriter
	id           string
	chat         bool
	promptTokens int
}

// wait returns the next event of j, or a done event with the request's
// error when the client goes away first.
func wait(r *http.Request, j *job) event {
	select {
	case ev := <-j.events:
		return ev
	case <-r.Context().Done():
		return event{done: true, err: r.Context().Err()}
	}
}

func (o *responder) usage(tokens int) *usage {
	return &usage{PromptTokens: o.promptTokens, CompletionTokens: tokens, TotalTokens: o.promptTokens + tokens}
}

// whole answers with the complete text once the generation ends.
func (o *responder) whole(r *http.Request, j *job) (event, time.Duration) {
	start := time.Now()
	var ttft time.Duration
	var b strings.Builder
	for {
		ev := wait(r, j)
		if ev.delta != "" && ttft == 0 {
			ttft = time.Since(start)
		}
		b.WriteString(ev.delta)
		if !ev.done {
			continue
		}
		if ev.err != nil {
			o.fail(ev.err)
			return ev, ttft
		}
		finish := ev.finish
		text := b.String()
		if o.chat {
			writeJSON(o.w, http.StatusOK, chatResponse{ID: o.id, Object: "chat.completion", Created: time.Now().Unix(), Model: o.s.opt.ModelName,
				Choices: []chatChoice{{Message: &chatDelta{Role: "assistant", Content: &text}, FinishReason: &finish}}, Usage: o.usage(ev.tokens)})
		} else {
			writeJSON(o.w, http.StatusOK, completionResponse{ID: o.id, Object: "text_completion", Created: time.Now().Unix(), Model: o.s.opt.ModelName,
				Choices: []completionChoice{{Text: text, FinishReason: &finish}}, Usage: o.usage(ev.tokens)})
		}
		return ev, ttft
	}
}

// fail answers an error that ended a generation before any byte was sent.
func (o *responder) fail(err error) {
	switch {
	case errors.Is(err, errShutdown):
		writeError(o.w, (&apiError{Status: http.StatusServiceUnavailable, Message: err.Error(), Type: "server_error"}).withCode("shutting_down"))
	case isClientGone(err):
		// The client is gone: nobody reads an answer.
	default:
		writeError(o.w, &apiError{Status: http.StatusInternalServerError, Message: err.Error(), Type: "server_error"})
	}
}

// stream answers with server-sent events as OpenAI sends them: one
// "data: {chunk}" per piece of text, a last chunk with the finish reason, a
// usage chunk when asked for, then "data: [DONE]".
func (o *responder) stream(r *http.Request, j *job, includeUsage bool) (event, time.Duration) {
	start := time.Now()
	var ttft time.Duration
	h := o.w.Header()
	h.Set("Content-Type", "text/event-stream")
	h.Set("Cache-Control", "no-cache")
	h.Set("Connection", "keep-alive")
	h.Set("X-Accel-Buffering", "no")
	o.w.WriteHeader(http.StatusOK)
	flusher, _ := o.w.(http.Flusher)
	created := time.Now().Unix()
	write := func(v any) {
		data, _ := json.Marshal(v)
		fmt.Fprintf(o.w, "data: %s\n\n", data)
		if flusher != nil {
			flusher.Flush()
		}
	}
	chunk := func(delta *string, role string, finish *string) any {
		if o.chat {
			return chatResponse{ID: o.id, Object: "chat.completion.chunk", Created: created, Model: o.s.opt.ModelName,
				Choices: []chatChoice{{Delta: &chatDelta{Role: role, Content: delta}, FinishReason: finish}}}
		}
		text := ""
		if delta != nil {
			text = *delta
		}
		return completionResponse{ID: o.id, Object: "text_completion", Created: created, Model: o.s.opt.ModelName,
			Choices: []completionChoice{{Text: text, FinishReason: finish}}}
	}
	if o.chat {
		empty := ""
		write(chunk(&empty, "assistant", nil))
	}
	for {
		ev := wait(r, j)
		if ev.delta != "" {
			if ttft == 0 {
				ttft = time.Since(start)
			}
			write(chunk(&ev.delta, "", nil))
		}
		if !ev.done {
			continue
		}
		if ev.err != nil {
			if !isClientGone(ev.err) {
				// The status line is sent: the error goes in the stream, as
				// OpenAI reports errors mid-stream.
				write(map[string]*apiError{"error": {Message: ev.err.Error(), Type: "server_error"}})
			}
			return ev, ttft
		}
		finish := ev.finish
		write(chunk(nil, "", &finish))
		if includeUsage {
			if o.chat {
				write(chatResponse{ID: o.id, Object: "chat.completion.chunk", Created: created, Model: o.s.opt.ModelName, Choices: []chatChoice{}, Usage: o.usage(ev.tokens)})
			} else {
				write(completionResponse{ID: o.id, Object: "text_completion", Created: created, Model: o.s.opt.ModelName, Choices: []completionChoice{}, Usage: o.usage(ev.tokens)})
			}
		}
		fmt.Fprint(o.w, "data: [DONE]\n\n")
		if flusher != nil {
			flusher.Flush()
		}
		return ev, ttft
	}
}

// isClientGone reports an error that means the client went away.
func isClientGone(err error) bool {
	return errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded)
}

// msec is d in milliseconds, to the microsecond.
func msec(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }
