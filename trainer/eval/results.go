package eval

import (
	"encoding/json"
	"fmt"
	"maps"
	"math"
	"slices"
	"strings"

	"github.com/salr-go/salr/datasets"
	"github.com/salr-go/salr/internal/atomicfile"
	"github.com/salr-go/salr/kernels/bitmap"
)

// Number is a score that may be undefined (NaN, e.g. the standard error of a
// single document). It is written to JSON as null when undefined, as lm-eval
// writes "N/A", and read back as NaN.
type Number float64

// MarshalJSON writes the number, or null for NaN and infinities.
func (n Number) MarshalJSON() ([]byte, error) {
	f := float64(n)
	if math.IsNaN(f) || math.IsInf(f, 0) {
		return []byte("null"), nil
	}
	return json.Marshal(f)
}

// UnmarshalJSON reads a number, or null as NaN.
func (n *Number) UnmarshalJSON(b []byte) error {
	if string(b) == "null" {
		*n = Number(math.NaN())
		return nil
	}
	var f float64
	if err := json.Unmarshal(b, &f); err != nil {
		return err
	}
	*n = Number(f)
	return nil
}

// Group is the accuracy of one MMLU subject or category.
type Group struct {
	Name     string `json:"name"`
	Category string `json:"category,omitempty"` // subjects only
	Acc      Number `json:"acc"`
	Stderr   Number `json:"acc_stderr"`
	N        int    `json:"n"`
}

// Count is the raw outcome count behind an accuracy.
type Count struct {
	Correct int `json:"correct"`
	N       int `json:"n"`
}

// Truncation counts what had to give way for prompts to fit the context.
type Truncation struct {
	// DocsWithDroppedShots is how many documents lost at least one shot
	// (oldest first), and DroppedShots how many shots were dropped in all.
	DocsWithDroppedShots int `json:"docs_with_dropped_shots"`
	DroppedShots         int `json:"dropped_shots"`
	// DocsByShots maps a shot count to the number of documents whose prompt
	// used that many shots.
	DocsByShots map[int]int `json:"docs_by_shots"`
	// PromptsCut counts documents whose zero-shot prompt alone did not fit,
	// so that its oldest tokens were cut (lm-eval's left truncation).
	PromptsCut int `json:"prompts_cut"`
	// GenerationsCapped counts GSM8K documents whose generation budget was
	// lowered to the context left after the zero-shot prompt.
	GenerationsCapped int `json:"generations_capped"`
}

// Timing is the speed of the run.
type Timing struct {
	WallSeconds   float64 `json:"wall_seconds"`
	DocsPerSecond float64 `json:"docs_per_second"`
	// PromptTokens is the number of prompt tokens the model read (a cut
	// MMLU prompt counts once per window), and ReusedTokens how many of them
	// came from a shared few-shot prefix cache instead of being run through
	// the model again (MMLU).
	PromptTokens int `json:"prompt_tokens"`
	ReusedTokens int `json:"reused_prompt_tokens"`
}

// Results is the outcome of an evaluation, the content of results.json.
type Results struct {
	Task string `json:"task"`
	// Template is the prompt template: lm-eval or metamath (GSM8K).
	Template string  `json:"template"`
	Model    string  `json:"model"`
	Adapters *string `json:"adapters"` // the run directory whose adapters were applied, or null
	Shots    int     `json:"shots"`
	Limit    *int    `json:"limit"` // documents per task (MMLU: per subject), or null for all
	BOS      bool    `json:"bos"`   // whether prompts started with BOS (lm-eval's add_bos_token)
	// ContextLength is the model's context in tokens (max_position_embeddings).
	ContextLength int `json:"context_length"`
	// MaxNewTokens and FewShotSeed are GSM8K's generation budget and shot
	// seed (lm-eval template), StopSequences its stop strings besides the
	// tokenizer's EOS, and Extraction how each metric's answer is taken from
	// the generated text.
	MaxNewTokens  int               `json:"max_new_tokens,omitempty"`
	FewShotSeed   int               `json:"fewshot_seed,omitempty"`
	StopSequences []string          `json:"stop_sequences,omitempty"`
	Extraction    map[string]string `json:"extraction,omitempty"`
	Docs          int               `json:"n_docs"`
	// Metrics holds the scores under lm-eval's names: "acc" and
	// "acc_stderr" (MMLU), "exact_match,strict-match",
	// "exact_match_stderr,strict-match" and the flexible-extract pair (GSM8K,
	// lm-eval template), "exact_match,metamath" and its stderr (GSM8K,
	// metamath template).
	Metrics map[string]Number `json:"metrics"`
	// Counts holds the outcome counts behind each metric (GSM8K filters).
	Counts     map[string]Count `json:"counts,omitempty"`
	Categories []Group          `json:"categories,omitempty"`
	Subjects   []Group          `json:"subjects,omitempty"`
	// FewerShots maps each MMLU subject with fewer dev questions than
	// Shots to the number it has, which its prompts use as their shots.
	FewerShots map[string]int `json:"subjects_with_fewer_shots,omitempty"`
	Truncation Truncation     `json:"truncation"`
	Timing     Timing         `json:"timing"`
	Date       string         `json:"date"`
	bitmap.Paths
}

// Metric names as lm-eval writes them.
const (
	metricAcc       = "acc"
	metricAccStderr = "acc_stderr"
)

// exactMatchKey is lm-eval's key of the exact_match metric (or its stderr)
// under a GSM8K filter, e.g. "exact_match,strict-match".
func exactMatchKey(filter string, stderr bool) string {
	if stderr {
		return "exact_match_stderr," + filter
	}
	return "exact_match," + filter
}

// Rows lists the scores as the rows of lm-eval's results table.
func (r *Results) Rows() []datasets.ScoreRow {
	switch r.Task {
	case TaskMMLU:
		toScore := func(g Group) datasets.GroupScore {
			return datasets.GroupScore{Name: g.Name, Acc: float64(g.Acc), Stderr: float64(g.Stderr), N: g.N}
		}
		s := datasets.MMLUScores{Overall: datasets.GroupScore{
			Name: "mmlu", Acc: float64(r.Metrics[metricAcc]), Stderr: float64(r.Metrics[metricAccStderr]), N: r.Docs,
		}}
		for _, g := range r.Categories {
			s.Categories = append(s.Categories, toScore(g))
		}
		for _, g := range r.Subjects {
			s.Subjects = append(s.Subjects, toScore(g))
		}
		return s.Rows(r.Shots)
	case TaskGSM8K:
		var rows []datasets.ScoreRow
		for _, f := range gsm8kFilters(r.Template) {
			c := r.Counts[f]
			rows = append(rows, datasets.GSM8KRow(f, datasets.Accuracy{Correct: c.Correct, Total: c.N}, r.Shots))
		}
		return rows
	}
	return nil
}

// Headline is the results' main metric and its value: "acc" for MMLU,
// "exact_match,strict-match" for GSM8K with the lm-eval template,
// "exact_match,metamath" with the metamath template.
func (r *Results) Headline() (metric string, value Number) {
	switch {
	case r.Task == TaskMMLU:
		metric = metricAcc
	case r.Template == TemplateMetaMath:
		metric = exactMatchKey(datasets.GSM8KMetaMath, false)
	default:
		metric = exactMatchKey(datasets.GSM8KStrictMatch, false)
	}
	v, ok := r.Metrics[metric]
	if !ok {
		v = Number(math.NaN())
	}
	return metric, v
}

// Markdown renders the results table followed by a line on truncation and
// speed.
func (r *Results) Markdown() string {
	var b strings.Builder
	b.WriteString(datasets.MarkdownTable(r.Rows()))
	t := r.Truncation
	fmt.Fprintf(&b, "\n%s (%s template, BOS %s), %d-shot, %d docs: %d docs dropped %d shots to fit the %d-token context",
		r.Task, r.templateName(), onOff(r.BOS), r.Shots, r.Docs, t.DocsWithDroppedShots, t.DroppedShots, r.ContextLength)
	if t.PromptsCut > 0 {
		fmt.Fprintf(&b, ", %d prompts cut", t.PromptsCut)
	}
	if t.GenerationsCapped > 0 {
		fmt.Fprintf(&b, ", %d generations capped", t.GenerationsCapped)
	}
	fmt.Fprintf(&b, "; %.1f docs/s (%.1f s)", r.Timing.DocsPerSecond, r.Timing.WallSeconds)
	if r.BLASCore != "" { // results.json written before the field
		fmt.Fprintf(&b, "; %s", r.Paths)
	}
	b.WriteString(".\n")
	if len(r.FewerShots) > 0 {
		names := slices.Sorted(maps.Keys(r.FewerShots))
		parts := make([]string, len(names))
		for i, n := range names {
			parts[i] = fmt.Sprintf("%s (%d)", n, r.FewerShots[n])
		}
		fmt.Fprintf(&b, "Subjects with fewer dev questions than the %d shots, run with that many shots: %s.\n", r.Shots, strings.Join(parts, ", "))
	}
	return b.String()
}

// templateName is the template, lm-eval when results predate the field.
func (r *Results) templateName() string {
	if r.Template == "" {
		return TemplateLMEval
	}
	return r.Template
}

func onOff(b bool) string {
	if b {
		return "on"
	}
	return "off"
}

// JSON returns the results as indented JSON with a final newline.
func (r *Results) JSON() ([]byte, error) {
	b, err := json.MarshalIndent(r, "", "  ")
	if err != nil {
		return nil, fmt.Errorf("eval: encoding results: %w", err)
	}
	return append(b, '\n'), nil
}

// WriteResults writes r as JSON to path atomically (a temporary file renamed
// into place); an existing file is an error unless overwrite is set.
func WriteResults(path string, r *Results, overwrite bool) error {
	data, err := r.JSON()
	if err != nil {
		return err
	}
	f, err := atomicfile.Create(path, overwrite)
	if err != nil {
		return err
	}
	if _, err := f.Write(data); err != nil {
		f.Abort()
		return fmt.Errorf("eval: writing %s: %w", path, err)
	}
	return f.Commit()
}
