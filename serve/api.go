package serve

import (
	"bytes"
	"encoding/json"
	"fmt"
	"math"
	"net/http"
	"strings"
)

// The request bodies of /v1/completions and /v1/chat/completions: the
// fields the server reads. Other OpenAI fields (presence_penalty,
// frequency_penalty, logit_bias, user, ...) are ignored; those whose meaning
// the server cannot honour (n or best_of above 1, echo, logprobs, suffix,
// tools) are refused.
type completionRequest struct {
	Model     string          `json:"model"`
	Prompt    json.RawMessage `json:"prompt"`   // completions: a string, [string] or [token ids]
	Messages  []chatMessage   `json:"messages"` // chat
	MaxTokens *int            `json:"max_tokens"`
	// MaxCompletionTokens is the chat API's newer name for max_tokens.
	MaxCompletionTokens *int            `json:"max_completion_tokens"`
	Temperature         *float64        `json:"temperature"`
	TopP                *float64        `json:"top_p"`
	N                   *int            `json:"n"`
	BestOf              *int            `json:"best_of"`
	Stop                json.RawMessage `json:"stop"` // a string or up to 4 strings
	Seed                *int64          `json:"seed"`
	Stream              bool            `json:"stream"`
	StreamOptions       *struct {
		IncludeUsage bool `json:"include_usage"`
	} `json:"stream_options"`
	Echo     bool            `json:"echo"`
	Logprobs json.RawMessage `json:"logprobs"`
	Suffix   *string         `json:"suffix"`
	Tools    json.RawMessage `json:"tools"`
}

// chatMessage is one message of a chat request. Content is a string or an
// array of parts of which only {"type":"text"} ones are accepted.
type chatMessage struct {
	Role    string          `json:"role"`
	Content json.RawMessage `json:"content"`
}

// usage counts the tokens of a request, as OpenAI reports them.
type usage struct {
	PromptTokens     int `json:"prompt_tokens"`
	CompletionTokens int `json:"completion_tokens"`
	TotalTokens      int `json:"total_tokens"`
}

type completionChoice struct {
	Text         string  `json:"text"`
	Index        int     `json:"index"`
	Logprobs     any     `json:"logprobs"`
	FinishReason *string `json:"finish_reason"`
}

type completionResponse struct {
	ID      string             `json:"id"`
	Object  string             `json:"object"`
	Created int64              `json:"created"`
	Model   string             `json:"model"`
	Choices []completionChoice `json:"choices"`
	Usage   *usage             `json:"usage,omitempty"`
}

type chatDelta struct {
	Role    string  `json:"role,omitempty"`
	Content *string `json:"content,omitempty"`
}

type chatChoice struct {
	Index        int        `json:"index"`
	Message      *chatDelta `json:"message,omitempty"`
	Delta        *chatDelta `json:"delta,omitempty"`
	Logprobs     any        `json:"logprobs"`
	FinishReason *string    `json:"finish_reason"`
}

type chatResponse struct {
	ID      string       `json:"id"`
	Object  string       `json:"object"`
	Created int64        `json:"created"`
	Model   string       `json:"model"`
	Choices []chatChoice `json:"choices"`
	Usage   *usage       `json:"usage,omitempty"`
}

// apiError is an error answered with an OpenAI-style body:
// {"error": {"message", "type", "param", "code"}}.
type apiError struct {
	Status  int     `json:"-"`
	Message string  `json:"message"`
	Type    string  `json:"type"`
	Param   *string `json:"param"`
	Code    *string `json:"code"`
}

func (e *apiError) Error() string { return e.Message }

// badRequest is a 400 invalid_request_error about param (may be empty).
func badRequest(param, format string, a ...any) *apiError {
	e := &apiError{Status: http.StatusBadRequest, Message: fmt.Sprintf(format, a...), Type: "invalid_request_error"}
	if param != "" {
		e.Param = &param
	}
	return e
}

// withCode sets the error's code.
func (e *apiError) withCode(code string) *apiError {
	e.Code = &code
	return e
}

// writeJSON answers status with v as JSON.
func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	json.NewEncoder(w).Encode(v)
}

// writeError answers e with its status and OpenAI-style body.
func writeError(w http.ResponseWriter, e *apiError) {
	writeJSON(w, e.Status, map[string]*apiError{"error": e})
}

// decodeRequest reads a request body as JSON into req.
func decodeRequest(body []byte, req *completionRequest) *apiError {
	if len(bytes.TrimSpace(body)) == 0 {
		return badRequest("", "the request body is empty; send a JSON object")
	}
	dec := json.NewDecoder(bytes.NewReader(body))
	if err := dec.Decode(req); err != nil {
		return badRequest("", "the request body is not valid JSON: %v", err)
	}
	if dec.More() {
		return badRequest("", "the request body holds more than one JSON value")
	}
	return nil
}

// sampling is what a request asks of the sampler and of the stop rules.
type sampling struct {
	maxTokens   int // 0: not given
	temperature float64
	topP        float64
	seed        *int64
	stops       []string
	stopIDs     []int
}

// parseSampling checks the parameters every endpoint shares.
func parseSampling(req *completionRequest) (sampling, *apiError) {
	s := sampling{temperature: 1, topP: 1, seed: req.Seed}
	if req.N != nil && *req.N != 1 {
		return s, badRequest("n", "n = %d: only n = 1 is supported", *req.N)
	}
	if req.BestOf != nil && *req.BestOf != 1 {
		return s, badRequest("best_of", "best_of = %d: only best_of = 1 is supported", *req.BestOf)
	}
	if req.Echo {
		return s, badRequest("echo", "echo is not supported")
	}
	if l := bytes.TrimSpace(req.Logprobs); len(l) > 0 && !bytes.Equal(l, []byte("null")) && !bytes.Equal(l, []byte("false")) {
		return s, badRequest("logprobs", "logprobs are not supported")
	}
	if req.Suffix != nil && *req.Suffix != "" {
		return s, badRequest("suffix", "suffix is not supported")
	}
	if t := bytes.TrimSpace(req.Tools); len(t) > 0 && !bytes.Equal(t, []byte("null")) && !bytes.Equal(t, []byte("[]")) {
		return s, badRequest("tools", "tools are not supported")
	}
	if req.MaxTokens != nil && req.MaxCompletionTokens != nil && *req.MaxTokens != *req.MaxCompletionTokens {
		return s, badRequest("max_completion_tokens", "max_tokens %d and max_completion_tokens %d disagree", *req.MaxTokens, *req.MaxCompletionTokens)
	}
	for _, p := range []struct {
		name string
		v    *int
	}{{"max_tokens", req.MaxTokens}, {"max_completion_tokens", req.MaxCompletionTokens}} {
		if p.v == nil {
			continue
		}
		if *p.v < 1 {
			return s, badRequest(p.name, "%s = %d: want 1 or more", p.name, *p.v)
		}
		s.maxTokens = *p.v
	}
	if req.Temperature != nil {
		s.temperature = *req.Temperature
		if !(s.temperature >= 0 && s.temperature <= 2) {
			return s, badRequest("temperature", "temperature = %v: want a number in [0, 2]", s.temperature)
		}
	}
	if req.TopP != nil {
		s.topP = *req.TopP
		if !(s.topP > 0 && s.topP <= 1) || math.IsNaN(s.topP) {
			return s, badRequest("top_p", "top_p = %v: want a number in (0, 1]", s.topP)
		}
	}
	stops, err := parseStop(req.Stop)
	if err != nil {
		return s, err
	}
	s.stops = stops
	return s, nil
}

// parseStop reads the stop parameter: null, a string, or an array of up to
// 4 strings. Empty strings are dropped.
func parseStop(raw json.RawMessage) ([]string, *apiError) {
	raw = bytes.TrimSpace(raw)
	if len(raw) == 0 || bytes.Equal(raw, []byte("null")) {
		return nil, nil
	}
	var one string
	if err := json.Unmarshal(raw, &one); err == nil {
		if one == "" {
			return nil, nil
		}
		return []string{one}, nil
	}
	var many []string
	if err := json.Unmarshal(raw, &many); err != nil {
		return nil, badRequest("stop", "stop must be a string or an array of strings")
	}
	if len(many) > 4 {
		return nil, badRequest("stop", "stop holds %d strings: at most 4", len(many))
	}
	var stops []string
	for _, s := range many {
		if s != "" {
			stops = append(stops, s)
		}
	}
	return stops, nil
}

// completionPrompt reads the prompt of /v1/completions: a string, an array
// holding one string, or an array of token ids (tokens is then set).
func completionPrompt(raw json.RawMessage) (text string, tokens []int, e *apiError) {
	raw = bytes.TrimSpace(raw)
	if len(raw) == 0 || bytes.Equal(raw, []byte("null")) {
		return "", nil, badRequest("prompt", "prompt is required")
	}
	if err := json.Unmarshal(raw, &text); err == nil {
		return text, nil, nil
	}
	var texts []string
	if err := json.Unmarshal(raw, &texts); err == nil {
		if len(texts) != 1 {
			return "", nil, badRequest("prompt", "prompt holds %d strings: only one prompt per request is supported", len(texts))
		}
		return texts[0], nil, nil
	}
	if err := json.Unmarshal(raw, &tokens); err == nil {
		if len(tokens) == 0 {
			return "", nil, badRequest("prompt", "prompt is an empty array of tokens")
		}
		return "", tokens, nil
	}
	return "", nil, badRequest("prompt", "prompt must be a string, an array of one string or an array of token ids")
}

// messageText returns a chat message's content as text: a string, or the
// concatenation of its text parts.
func messageText(i int, m chatMessage) (string, *apiError) {
	param := fmt.Sprintf("messages[%d].content", i)
	raw := bytes.TrimSpace(m.Content)
	if len(raw) == 0 || bytes.Equal(raw, []byte("null")) {
		return "", nil
	}
	var s string
	if err := json.Unmarshal(raw, &s); err == nil {
		return s, nil
	}
	var parts []struct {
		Type string `json:"type"`
		Text string `json:"text"`
	}
	if err := json.Unmarshal(raw, &parts); err != nil {
		return "", badRequest(param, "%s must be a string or an array of content parts", param)
	}
	var b strings.Builder
	for j, p := range parts {
		if p.Type != "text" {
			return "", badRequest(param, "%s[%d] has type %q: only text parts are supported", param, j, p.Type)
		}
		b.WriteString(p.Text)
	}
	return b.String(), nil
}
