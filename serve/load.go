package serve

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"sync"
	"time"
)

// LoadOptions configures Load: Clients clients at once, each sending
// Requests streaming completion requests one after the other.
type LoadOptions struct {
	URL       string // the server's base URL, e.g. http://127.0.0.1:8080
	Clients   int
	Requests  int    // per client
	Prompt    string // the prompt of every request
	MaxTokens int
	// Temperature of the requests; each request has its own seed (its
	// number), so the load is the same from run to run.
	Temperature float64
	Client      *http.Client // default http.DefaultClient
}

// LoadResult measures a Load: the tokens the server streamed (as its usage
// chunks count them) per second of the whole load, and the time to first
// token of the requests, from sending to the first text chunk.
type LoadResult struct {
	Clients          int     `json:"clients"`
	Requests         int     `json:"requests"`
	CompletionTokens int     `json:"completion_tokens"`
	Seconds          float64 `json:"seconds"`
	TokensPerSecond  float64 `json:"tokens_per_second"`
	TTFTP50Ms        float64 `json:"ttft_p50_ms"`
	TTFTP99Ms        float64 `json:"ttft_p99_ms"`
}

// Load runs a load of streaming clients against a server and measures it.
// Any failed request fails the load.
func Load(ctx context.Context, o LoadOptions) (LoadResult, error) {
	if o.Clients < 1 || o.Requests < 1 || o.MaxTokens < 1 {
		return LoadResult{}, fmt.Errorf("serve: load: clients %d, requests %d, max tokens %d: all must be positive", o.Clients, o.Requests, o.MaxTokens)
	}
	client := o.Client
	if client == nil {
		client = http.DefaultClient
	}
	var (
		mu     sync.Mutex
		ttfts  []time.Duration
		tokens int
		first  error
		wg     sync.WaitGroup
	)
	start := time.Now()
	for c := range o.Clients {
		wg.Go(func() {
			for r := range o.Requests {
				seed := c*o.Requests + r
				ttft, n, err := StreamCompletion(ctx, client, o.URL, map[string]any{
					"prompt": o.Prompt, "max_tokens": o.MaxTokens, "temperature": o.Temperature, "seed": seed,
					"stream": true, "stream_options": map[string]bool{"include_usage": true},
				}, nil)
				mu.Lock()
				if err != nil && first == nil {
					first = err
				}
				if ttft > 0 {
					ttfts = append(ttfts, ttft)
				}
				tokens += n
				mu.Unlock()
				if err != nil {
					return
				}
			}
		})
	}
	wg.Wait()
	if first != nil {
		return LoadResult{}, first
	}
	secs := time.Since(start).Seconds()
	slices.Sort(ttfts)
	return LoadResult{
		Clients: o.Clients, Requests: o.Clients * o.Requests, CompletionTokens: tokens, Seconds: secs,
		TokensPerSecond: float64(tokens) / secs, TTFTP50Ms: msec(quantile(ttfts, 0.5)), TTFTP99Ms: msec(quantile(ttfts, 0.99)),
	}, nil
}

// quantile is the q-quantile of sorted (nearest rank).
func quantile(sorted []time.Duration, q float64) time.Duration {
	if len(sorted) == 0 {
		return 0
	}
	i := int(q*float64(len(sorted))+0.999999) - 1
	return sorted[max(0, min(i, len(sorted)-1))]
}

// StreamCompletion sends a streaming request to url's /v1/completions and
// reads its events to the end: it returns the time to the first text chunk
// and the completion tokens of the usage chunk (the request must ask for
// it). onText, when set, receives each piece of text. A stream that ends
// without "data: [DONE]" is an error.
func StreamCompletion(ctx context.Context, client *http.Client, url string, body map[string]any, onText func(string)) (time.Duration, int, error) {
	data, err := json.Marshal(body)
	if err != nil {
		return 0, 0, err
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, strings.TrimSuffix(url, "/")+"/v1/completions", bytes.NewReader(data))
	if err != nil {
		return 0, 0, err
	}
	req.Header.Set("Content-Type", "application/json")
	start := time.Now()
	resp, err := client.Do(req)
	if err != nil {
		return 0, 0, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		var e struct{ Error apiError }
		json.NewDecoder(resp.Body).Decode(&e)
		return 0, 0, fmt.Errorf("serve: %s: %s: %s", req.URL, resp.Status, e.Error.Message)
	}
	var ttft time.Duration
	tokens := 0
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		line, ok := strings.CutPrefix(sc.Text(), "data: ")
		if !ok {
			continue
		}
		if line == "[DONE]" {
			return ttft, tokens, nil
		}
		var chunk struct {
			Choices []struct{ Text string }
			Usage   *usage
			Error   *apiError
		}
		if err := json.Unmarshal([]byte(line), &chunk); err != nil {
			return ttft, tokens, fmt.Errorf("serve: %s: bad event %q: %w", req.URL, line, err)
		}
		if chunk.Error != nil {
			return ttft, tokens, fmt.Errorf("serve: %s: error in the stream: %s", req.URL, chunk.Error.Message)
		}
		for _, c := range chunk.Choices {
			if c.Text != "" && ttft == 0 {
				ttft = time.Since(start)
			}
			if onText != nil {
				onText(c.Text)
			}
		}
		if chunk.Usage != nil {
			tokens = chunk.Usage.CompletionTokens
		}
	}
	if err := sc.Err(); err != nil {
		return ttft, tokens, err
	}
	return ttft, tokens, fmt.Errorf("serve: %s: the stream ended without [DONE]", req.URL)
}
