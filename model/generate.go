package model

import (
	"fmt"
	"math"
	"math/rand/v2"
	"sort"
)

// Sampler picks the next token from a row of logits: greedy (arg-max) at
// temperature 0, otherwise softmax sampling at the given temperature, limited
// to the smallest set of tokens whose probability reaches TopP (nucleus
// sampling; TopP >= 1 disables it). The same seed gives the same choices.
type Sampler struct {
	Temperature float64
	TopP        float64
	rng         *rand.Rand
	probs       []float64
	order       []int
}

// NewSampler returns a sampler with its own random stream.
func NewSampler(temperature, topP float64, seed uint64) (*Sampler, error) {
	if temperature < 0 || math.IsNaN(temperature) {
		return nil, fmt.Errorf("model: temperature %v must be >= 0", temperature)
	}
	if !(topP > 0 && topP <= 1) {
		return nil, fmt.Errorf("model: top-p %v must be in (0, 1]", topP)
	}
	return &Sampler{Temperature: temperature, TopP: topP, rng: rand.New(rand.NewPCG(seed, 0x5a17))}, nil
}

// Argmax returns the index of the largest logit (the first one on ties).
func Argmax(logits []float32) int {
	best := 0
	for i, v := range logits {
		if v > logits[best] {
			best = i
		}
	}
	return best
}

// Sample picks a token id from logits.
func (s *Sampler) Sample(logits []float32) int {
	if s.Temperature == 0 {
		return Argmax(logits)
	}
	n := len(logits)
	if cap(s.probs) < n {
		s.probs, s.order = make([]float64, n), make([]int, n)
	}
	p, order := s.probs[:n], s.order[:n]
	mx := float64(logits[Argmax(logits)])
	var sum float64
	for i, v := range logits {
		p[i] = math.Exp((float64(v) - mx) / s.Temperature)
		sum += p[i]
	}
	for i := range p {
		p[i] /= sum
		order[i] = i
	}
	keep := n
	if s.TopP < 1 {
		sort.Slice(order, func(a, b int) bool {
			if p[order[a]] != p[order[b]] {
				return p[order[a]] > p[order[b]]
			}
			return order[a] < order[b]
		})
		var cum float64
		for i, id := range order {
			cum += p[id]
			if cum >= s.TopP {
				keep = i + 1
				break
			}
		}
	}
	var mass float64
	for _, id := range order[:keep] {
		mass += p[id]
	}
	u := s.rng.Float64() * mass
	for _, id := range order[:keep] {
		u -= p[id]
		if u <= 0 {
			return id
		}
	}
	return order[keep-1]
}

// GenerateOptions configures Generate.
type GenerateOptions struct {
	MaxNewTokens int
	Sampler      *Sampler
	// StopIDs end a sequence when generated (typically EOS); the stop token
	// is not included in the output.
	StopIDs []int
	// OnToken, when set, is called after every generated token with the
	// sequence index and all tokens generated for it so far; returning false
	// stops that sequence (e.g. on a stop string).
	OnToken func(seq int, generated []int) bool
}

// Generate continues each prompt (token ids, BOS included if the model wants
// it) in one batch: one prefill of all prompts, then one decode step per new
// token for the sequences still running. It returns the generated ids per
// prompt.
func (r *Runner) Generate(prompts [][]int, opt GenerateOptions) ([][]int, error) {
	if opt.Sampler == nil {
		return nil, fmt.Errorf("model: Generate: no sampler")
	}
	caches := make([]*Cache, len(prompts))
	out := make([][]int, len(prompts))
	maxPos := r.P.Config.MaxPositions
	for i, p := range prompts {
		if len(p) == 0 {
			return nil, fmt.Errorf("model: Generate: prompt %d is empty", i)
		}
		capacity := len(p) + opt.MaxNewTokens
		if maxPos > 0 && capacity > maxPos {
			capacity = maxPos
		}
		if len(p) >= capacity && opt.MaxNewTokens > 0 {
			return nil, fmt.Errorf("model: Generate: prompt %d has %d tokens, the context holds %d", i, len(p), maxPos)
		}
		caches[i] = r.NewCache(capacity)
	}
	stop := make(map[int]bool, len(opt.StopIDs))
	for _, id := range opt.StopIDs {
		stop[id] = true
	}
	active := make([]int, len(prompts))
	step := make([][]int, len(prompts))
	for i := range prompts {
		active[i] = i
		step[i] = prompts[i]
	}
	for n := 0; n < opt.MaxNewTokens && len(active) > 0; n++ {
		cs := make([]*Cache, len(active))
		for j, i := range active {
			cs[j] = caches[i]
		}
		logits, err := r.Forward(step[:len(active)], cs, false)
		if err != nil {
			return nil, err
		}
		next := active[:0]
		nextStep := step[:0]
		for j, i := range active {
			tok := opt.Sampler.Sample(logits[j])
			if stop[tok] {
				continue
			}
			out[i] = append(out[i], tok)
			if opt.OnToken != nil && !opt.OnToken(i, out[i]) {
				continue
			}
			if caches[i].Len >= caches[i].Cap {
				continue
			}
			next = append(next, i)
			nextStep = append(nextStep, []int{tok})
		}
		active, step = next, nextStep
	}
	return out, nil
}
