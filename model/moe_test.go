package model

import (
	"context"
	"fmt"
	"math"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/salr-go/salr/model/safetensors"
)

// testMoEConfigs are small mixture-of-experts models of both families: a
// Mixtral, and a Qwen2-MoE with a dense layer (mlp_only_layers), a shared
// expert and unnormalised top-k weights.
func testMoEConfigs() map[string]Config {
	mixtral := Config{ModelType: "mixtral", Hidden: 64, Intermediate: 48, Layers: 2, Heads: 4, KVHeads: 2, HeadDim: 16,
		Vocab: 96, MaxPositions: 128, RMSNormEps: 1e-5, RopeTheta: 10000, BOSTokenID: -1,
		Experts: 4, ExpertsPerToken: 2, ExpertIntermediate: 48, NormTopKProb: true, SparseStep: 1}
	qwen := Config{ModelType: "qwen2_moe", Hidden: 64, Intermediate: 80, Layers: 3, Heads: 4, KVHeads: 2, HeadDim: 16,
		Vocab: 96, MaxPositions: 128, RMSNormEps: 1e-6, RopeTheta: 10000, BOSTokenID: -1, AttentionBias: true,
		Experts: 6, ExpertsPerToken: 2, ExpertIntermediate: 32, SharedIntermediate: 40, SparseStep: 1, MLPOnlyLayers: []int{1}}
	return map[string]Config{"mixtral": mixtral, "qwen2_moe": qwen}
}

// writeTestMoE writes the random HF checkpoint of a test MoE config and
// loads it.
func writeTestMoE(t *testing.T, cfg Config) *Checkpoint {
	t.Helper()
	dir := filepath.Join(t.TempDir(), cfg.ModelType)
	if _, err := WriteRandomHF(context.Background(), dir, cfg, RandomHFOptions{DType: safetensors.F32, Seed: 7}); err != nil {
		t.Fatal(err)
	}
	ck, err := Load(dir)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ck.Close() })
	return ck
}

func TestMoEConfigRoundTrip(t *testing.T) {
	for name, cfg := range testMoEConfigs() {
		text, err := cfg.MarshalHF()
		if err != nil {
			t.Fatal(err)
		}
		got, err := ParseHFConfig(text, "config.json")
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		cfg.TorchDtype = got.TorchDtype
		if fmt.Sprint(got) != fmt.Sprint(cfg) {
			t.Errorf("%s: round trip\n got %+v\nwant %+v", name, got, cfg)
		}
	}
}

func TestMoEConfigErrors(t *testing.T) {
	base := `"hidden_size": 64, "intermediate_size": 48, "num_hidden_layers": 2, "num_attention_heads": 4, "num_key_value_heads": 2, "vocab_size": 96`
	for _, c := range []struct{ json, want string }{
		{`{"model_type": "mixtral", ` + base + `, "num_experts_per_tok": 2}`, `missing required field "num_local_experts"`},
		{`{"model_type": "mixtral", ` + base + `, "num_local_experts": 4}`, `missing required field "num_experts_per_tok"`},
		{`{"model_type": "mixtral", ` + base + `, "num_local_experts": 4, "num_experts_per_tok": 5}`, `num_experts_per_tok must be in [1, num_local_experts = 4], got 5`},
		{`{"model_type": "qwen2_moe", ` + base + `, "num_experts": 4, "num_experts_per_tok": 2, "shared_expert_intermediate_size": 8}`, `missing required field "moe_intermediate_size"`},
		{`{"model_type": "qwen2_moe", ` + base + `, "num_experts": 4, "num_experts_per_tok": 2, "moe_intermediate_size": 8, "shared_expert_intermediate_size": 8, "mlp_only_layers": [2]}`, `mlp_only_layers: layer 2 is not in [0, num_hidden_layers = 2)`},
		{`{"model_type": "qwen2_moe", ` + base + `, "num_experts": 4, "num_experts_per_tok": 2, "moe_intermediate_size": 8, "shared_expert_intermediate_size": 8, "decoder_sparse_step": 0}`, `decoder_sparse_step must be positive`},
		{`{"model_type": "llama", ` + base + `, "num_local_experts": 4}`, `model_type llama has no experts`},
		{`{"model_type": "dbrx", ` + base + `}`, `want llama, mistral, qwen2, mixtral or qwen2_moe`},
	} {
		_, err := ParseHFConfig([]byte(c.json), "m/config.json")
		if err == nil || !strings.Contains(err.Error(), c.want) || !strings.HasPrefix(err.Error(), "m/config.json") {
			t.Errorf("%s:\n got %v\nwant %q", c.json, err, c.want)
		}
	}
}

func TestSparseLayer(t *testing.T) {
	c := Config{ModelType: "qwen2_moe", Layers: 6, Experts: 4, SparseStep: 2, MLPOnlyLayers: []int{3}}
	var sparse []int
	for l := 0; l < c.Layers; l++ {
		if c.SparseLayer(l) {
			sparse = append(sparse, l)
		}
	}
	// (l+1) % 2 == 0 for l = 1, 3, 5; 3 is in mlp_only_layers.
	if !slices.Equal(sparse, []int{1, 5}) {
		t.Errorf("sparse layers %v, want [1 5]", sparse)
	}
}

func TestMoETensorNames(t *testing.T) {
	cfgs := testMoEConfigs()
	shapes := cfgs["mixtral"].TensorShapes()
	for _, name := range []string{
		"model.layers.1.block_sparse_moe.gate.weight",
		"model.layers.1.block_sparse_moe.experts.3.w1.weight",
		"model.layers.1.block_sparse_moe.experts.3.w2.weight",
		"model.layers.1.block_sparse_moe.experts.3.w3.weight",
	} {
		if _, ok := shapes[name]; !ok {
			t.Errorf("mixtral: no tensor %s", name)
		}
	}
	if s := shapes["model.layers.0.block_sparse_moe.experts.0.w2.weight"]; !slices.Equal(s, []int{64, 48}) {
		t.Errorf("w2 shape %v", s)
	}
	shapes = cfgs["qwen2_moe"].TensorShapes()
	for _, name := range []string{
		"model.layers.0.mlp.gate.weight",
		"model.layers.0.mlp.experts.5.gate_proj.weight",
		"model.layers.0.mlp.shared_expert.down_proj.weight",
		"model.layers.0.mlp.shared_expert_gate.weight",
		"model.layers.1.mlp.gate_proj.weight", // mlp_only_layers
		"model.layers.2.self_attn.q_proj.bias",
	} {
		if _, ok := shapes[name]; !ok {
			t.Errorf("qwen2_moe: no tensor %s", name)
		}
	}
	if _, ok := shapes["model.layers.1.mlp.gate.weight"]; ok {
		t.Error("qwen2_moe: dense layer 1 has a router")
	}
}

func TestLoadMoEMissingTensor(t *testing.T) {
	cfg := testMoEConfigs()["mixtral"]
	ck, err := RandomCheckpoint(cfg, 1)
	if err != nil {
		t.Fatal(err)
	}
	delete(ck.Tensors, "model.layers.1.block_sparse_moe.experts.2.w3.weight")
	_, err = NewParams(ck)
	if err == nil || !strings.Contains(err.Error(), "missing tensor model.layers.1.block_sparse_moe.experts.2.w3.weight") {
		t.Errorf("got %v", err)
	}
}

// refMoE is an independent float64 forward of a Mixtral or Qwen2-MoE
// checkpoint, read from its HF tensors by name, computing the whole
// sequence at once (no cache).
type refMoE struct {
	cfg Config
	w   map[string][]float64
}

func newRefMoE(ck *Checkpoint) *refMoE {
	r := &refMoE{cfg: ck.Config, w: map[string][]float64{}}
	for name, t := range ck.Tensors {
		v := t.Float32()
		d := make([]float64, len(v))
		for i, x := range v {
			d[i] = float64(x)
		}
		r.w[name] = d
	}
	return r
}

// lin computes x W^T (+ bias) for x [n, in], W [out, in].
func (r *refMoE) lin(name string, x []float64, n int) []float64 {
	w := r.w[name+".weight"]
	in := len(x) / n
	out := len(w) / in
	y := make([]float64, n*out)
	b := r.w[name+".bias"]
	for i := 0; i < n; i++ {
		for o := 0; o < out; o++ {
			var s float64
			for k := 0; k < in; k++ {
				s += x[i*in+k] * w[o*in+k]
			}
			if b != nil {
				s += b[o]
			}
			y[i*out+o] = s
		}
	}
	return y
}

func (r *refMoE) norm(x []float64, n int, w []float64) []float64 {
	c := len(x) / n
	y := make([]float64, len(x))
	for i := 0; i < n; i++ {
		var ss float64
		for _, v := range x[i*c : (i+1)*c] {
			ss += v * v
		}
		s := 1 / math.Sqrt(ss/float64(c)+r.cfg.RMSNormEps)
		for j := 0; j < c; j++ {
			y[i*c+j] = x[i*c+j] * s * w[j]
		}
	}
	return y
}

func (r *refMoE) rope(x []float64, n, heads int) {
	d := r.cfg.HeadDim
	for t := 0; t < n; t++ {
		for h := 0; h < heads; h++ {
			v := x[(t*heads+h)*d : (t*heads+h+1)*d]
			for i := 0; i < d/2; i++ {
				freq := math.Pow(r.cfg.RopeTheta, -float64(2*i)/float64(d))
				s, c := math.Sincos(float64(t) * freq)
				a, b := v[i], v[i+d/2]
				v[i], v[i+d/2] = a*c-b*s, b*c+a*s
			}
		}
	}
}

func silu(x float64) float64 { return x / (1 + math.Exp(-x)) }

func (r *refMoE) mlp(prefix string, x []float64, n int) []float64 {
	g := r.lin(prefix+".gate_proj", x, n)
	u := r.lin(prefix+".up_proj", x, n)
	for i := range g {
		g[i] = silu(g[i]) * u[i]
	}
	return r.lin(prefix+".down_proj", g, n)
}

// forward returns the logits of the last token and, per layer, each
// token's chosen experts (nil rows for dense layers).
func (r *refMoE) forward(ids []int) ([]float64, [][][]int) {
	cfg := r.cfg
	n, c, d := len(ids), cfg.Hidden, cfg.HeadDim
	x := make([]float64, n*c)
	for t, id := range ids {
		copy(x[t*c:], r.w["model.embed_tokens.weight"][id*c:(id+1)*c])
	}
	var routes [][][]int
	for l := 0; l < cfg.Layers; l++ {
		p := fmt.Sprintf("model.layers.%d.", l)
		h := r.norm(x, n, r.w[p+"input_layernorm.weight"])
		q, k, v := r.lin(p+"self_attn.q_proj", h, n), r.lin(p+"self_attn.k_proj", h, n), r.lin(p+"self_attn.v_proj", h, n)
		r.rope(q, n, cfg.Heads)
		r.rope(k, n, cfg.KVHeads)
		att := make([]float64, n*cfg.Heads*d)
		group := cfg.Heads / cfg.KVHeads
		for t := 0; t < n; t++ {
			for hh := 0; hh < cfg.Heads; hh++ {
				kvh := hh / group
				qv := q[(t*cfg.Heads+hh)*d : (t*cfg.Heads+hh+1)*d]
				sc := make([]float64, t+1)
				m := math.Inf(-1)
				for s := 0; s <= t; s++ {
					kv := k[(s*cfg.KVHeads+kvh)*d : (s*cfg.KVHeads+kvh+1)*d]
					for i := range qv {
						sc[s] += qv[i] * kv[i]
					}
					sc[s] /= math.Sqrt(float64(d))
					m = max(m, sc[s])
				}
				var z float64
				for s := range sc {
					sc[s] = math.Exp(sc[s] - m)
					z += sc[s]
				}
				o := att[(t*cfg.Heads+hh)*d : (t*cfg.Heads+hh+1)*d]
				for s := 0; s <= t; s++ {
					vv := v[(s*cfg.KVHeads+kvh)*d : (s*cfg.KVHeads+kvh+1)*d]
					for i := range o {
						o[i] += sc[s] / z * vv[i]
					}
				}
			}
		}
		o := r.lin(p+"self_attn.o_proj", att, n)
		for i := range x {
			x[i] += o[i]
		}
		h = r.norm(x, n, r.w[p+"post_attention_layernorm.weight"])
		var y []float64
		var layerRoutes [][]int
		block := "mlp"
		expert := [3]string{"gate_proj", "up_proj", "down_proj"}
		if cfg.ModelType == "mixtral" {
			block, expert = "block_sparse_moe", [3]string{"w1", "w3", "w2"}
		}
		if _, sparse := r.w[p+block+".gate.weight"]; !sparse {
			y = r.mlp(p+"mlp", h, n)
		} else {
			logits := r.lin(p+block+".gate", h, n)
			y = make([]float64, n*c)
			for t := 0; t < n; t++ {
				row := logits[t*cfg.Experts : (t+1)*cfg.Experts]
				prob := make([]float64, len(row))
				var z float64
				for e := range row {
					prob[e] = math.Exp(row[e])
					z += prob[e]
				}
				order := make([]int, len(row))
				for e := range order {
					order[e] = e
					prob[e] /= z
				}
				slices.SortStableFunc(order, func(a, b int) int {
					switch {
					case prob[a] > prob[b]:
						return -1
					case prob[a] < prob[b]:
						return 1
					}
					return 0
				})
				chosen := order[:cfg.ExpertsPerToken]
				layerRoutes = append(layerRoutes, chosen)
				var sum float64
				for _, e := range chosen {
					sum += prob[e]
				}
				xt := h[t*c : (t+1)*c]
				for _, e := range chosen {
					ep := fmt.Sprintf("%s%s.experts.%d.", p, block, e)
					g := r.lin(ep+expert[0], xt, 1)
					u := r.lin(ep+expert[1], xt, 1)
					for i := range g {
						g[i] = silu(g[i]) * u[i]
					}
					out := r.lin(ep+expert[2], g, 1)
					wt := prob[e]
					if cfg.ModelType == "mixtral" || cfg.NormTopKProb {
						wt /= sum
					}
					for i := range out {
						y[t*c+i] += wt * out[i]
					}
				}
				if cfg.SharedIntermediate > 0 {
					s := r.mlp(p+"mlp.shared_expert", xt, 1)
					gate := r.lin(p+"mlp.shared_expert_gate", xt, 1)[0]
					sg := 1 / (1 + math.Exp(-gate))
					for i := range s {
						y[t*c+i] += sg * s[i]
					}
				}
			}
		}
		routes = append(routes, layerRoutes)
		for i := range x {
			x[i] += y[i]
		}
	}
	last := r.norm(x[(n-1)*c:], 1, r.w["model.norm.weight"])
	head := "lm_head"
	if cfg.TieEmbeddings {
		head = "model.embed_tokens"
	}
	return r.lin(head, last, 1), routes
}

func argmax64(v []float64) int {
	best := 0
	for i, x := range v {
		if x > v[best] {
			best = i
		}
	}
	return best
}

// TestMoEGenerationMatchesReference writes a random HF checkpoint of each
// family, generates greedily with the Runner (grouped expert GEMMs, KV
// cache) and checks every token, the logits and the router's choices
// against the float64 reference.
func TestMoEGenerationMatchesReference(t *testing.T) {
	for name, cfg := range testMoEConfigs() {
		t.Run(name, func(t *testing.T) {
			ck := writeTestMoE(t, cfg)
			p, err := NewParams(ck)
			if err != nil {
				t.Fatal(err)
			}
			ref := newRefMoE(ck)
			r := NewRunner(p)
			prompts := [][]int{{3, 17, 42, 5, 88, 11}, {9, 1}}
			sampler, _ := NewSampler(0, 1, 0)
			got, err := r.Generate(prompts, GenerateOptions{MaxNewTokens: 12, Sampler: sampler})
			if err != nil {
				t.Fatal(err)
			}
			// The Runner's routing, observed through its router inputs.
			for i, prompt := range prompts {
				seq := slices.Clone(prompt)
				for step := 0; step < 12; step++ {
					logits, routes := ref.forward(seq)
					want := argmax64(logits)
					if step >= len(got[i]) || got[i][step] != want {
						t.Fatalf("prompt %d: token %d: got %v, reference %d", i, step, got[i], want)
					}
					seq = append(seq, want)
					if step == 11 {
						checkRoutes(t, p, seq[:len(seq)-1], routes)
						rl, err := r.Forward([][]int{seq[:len(seq)-1]}, []*Cache{r.NewCache(len(seq))}, false)
						if err != nil {
							t.Fatal(err)
						}
						var diff float64
						for j, v := range rl[0] {
							diff = max(diff, math.Abs(float64(v)-logits[j]))
						}
						if diff > 1e-4 {
							t.Errorf("prompt %d: logits differ from the reference by %g", i, diff)
						}
					}
				}
			}
		})
	}
}

// checkRoutes runs the Runner on seq, recording each sparse layer's router
// logits, and compares the experts RouteTopK picks with the reference's.
func checkRoutes(t *testing.T, p *Params[float32], seq []int, want [][][]int) {
	t.Helper()
	r := NewRunner(p)
	routers := map[*Linear[float32]]int{}
	for l := range p.Layers {
		if m := p.Layers[l].MoE; m != nil {
			routers[m.Router] = l
		}
	}
	checked := 0
	r.Observe = func(lin *Linear[float32], x []float32, n int) {
		l, ok := routers[lin]
		if !ok {
			return
		}
		m := p.Layers[l].MoE
		e := len(m.Experts)
		logits := make([]float32, n*e)
		lin.Base.MulT(logits, x, n)
		idx := make([]int, n*m.TopK)
		RouteTopK(logits, n, e, m.TopK, m.NormTopK, idx, make([]float32, n*m.TopK))
		for tok := 0; tok < n; tok++ {
			if !slices.Equal(idx[tok*m.TopK:(tok+1)*m.TopK], want[l][tok]) {
				t.Errorf("layer %d token %d: experts %v, reference %v", l, tok, idx[tok*m.TopK:(tok+1)*m.TopK], want[l][tok])
			}
		}
		checked++
	}
	if _, err := r.Forward([][]int{seq}, []*Cache{r.NewCache(len(seq))}, false); err != nil {
		t.Fatal(err)
	}
	if checked == 0 {
		t.Error("no router ran")
	}
}

func TestMoENamedShapes(t *testing.T) {
	c, err := NamedShape("mixtral-1024x8e8k2")
	if err != nil {
		t.Fatal(err)
	}
	if c.ModelType != "mixtral" || c.Hidden != 1024 || c.Layers != 8 || c.Experts != 8 || c.ExpertsPerToken != 2 ||
		c.ExpertIntermediate != 2816 || c.KVHeads != 4 || !c.NormTopKProb {
		t.Errorf("mixtral-1024x8e8k2: %+v", c)
	}
	q, err := NamedShape("qwen2_moe-1024x4e16k4")
	if err != nil {
		t.Fatal(err)
	}
	if q.ModelType != "qwen2_moe" || q.Experts != 16 || q.ExpertsPerToken != 4 || q.ExpertIntermediate != 704 ||
		q.SharedIntermediate != 2816 || q.NormTopKProb || !q.AttentionBias {
		t.Errorf("qwen2_moe-1024x4e16k4: %+v", q)
	}
	for _, bad := range []string{"mixtral-1024x8e8k9", "mixtral-1000x8e8k2", "mixtral-1024x8", "mixtral-1024x8e8k2x", "qwen2_moe-64x1e0k1"} {
		if _, err := NamedShape(bad); err == nil || !strings.Contains(err.Error(), bad) {
			t.Errorf("%s: %v", bad, err)
		}
	}
}
