package eval

import (
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/salr-go/salr/datasets"
	"github.com/salr-go/salr/datasets/assets"
	"github.com/salr-go/salr/kernels/bitmap"
	"github.com/salr-go/salr/model"
)

// The tasks Run knows.
const (
	TaskGSM8K = "gsm8k"
	TaskMMLU  = "mmlu"
)

// DefaultShots is the number of few-shot examples when none is given
// (lm-eval's common 5-shot setting for both tasks).
const DefaultShots = 5

// The prompt templates (Options.Template). TemplateLMEval is lm-eval's
// (GSM8K "Question: ...\nAnswer:", MMLU's multiple choice); TemplateMetaMath
// is the zero-shot GSM8K evaluation of MetaMath-trained models (MetaMath's
// and PiSSA's eval_gsm8k: the Alpaca-style training template and MetaMath's
// answer extraction). docs/protocols.md states both.
const (
	TemplateLMEval   = "lm-eval"
	TemplateMetaMath = "metamath"
)

// Templates lists the template names.
var Templates = []string{TemplateLMEval, TemplateMetaMath}

// DefaultShotsFor is the number of shots of a template when none is given:
// DefaultShots for lm-eval, 0 for metamath (zero-shot only).
func DefaultShotsFor(template string) int {
	if template == TemplateMetaMath {
		return 0
	}
	return DefaultShots
}

// DefaultMaxNewTokensFor is the GSM8K generation budget of a template when
// none is given: lm-eval's 256, or MetaMath's 512.
func DefaultMaxNewTokensFor(template string) int {
	if template == TemplateMetaMath {
		return datasets.GSM8KMetaMathMaxNewTokens
	}
	return datasets.GSM8KMaxNewTokens
}

// defaultContext is lm-eval's fallback context length when the model's
// config does not give max_position_embeddings.
const defaultContext = 2048

// Options configure an evaluation run.
type Options struct {
	// Task is TaskGSM8K or TaskMMLU.
	Task string
	// Template is TemplateLMEval (also when empty) or TemplateMetaMath
	// (GSM8K only, zero-shot).
	Template string
	// DataDir holds the task's data: train.jsonl and test.jsonl for GSM8K,
	// dev/ and test/ in the MMLU data.tar layout for MMLU (see DataDir).
	DataDir string
	// Shots is the number of few-shot examples per prompt (dropped from the
	// front when a prompt does not fit the context).
	Shots int
	// Limit keeps the first Limit documents (MMLU: of each subject); 0
	// evaluates all.
	Limit int
	// Subjects restricts MMLU to these subjects (nil: all in DataDir/test).
	Subjects []string
	// Batch is the number of documents run through the model together.
	Batch int
	// MaxNewTokens bounds a GSM8K generation; 0 means the template's
	// default (DefaultMaxNewTokensFor).
	MaxNewTokens int
	// BOS starts every prompt with the tokenizer's BOS token (lm-eval's
	// add_bos_token=True). The commands pass the tokenizer's own setting
	// (its AddBOS, which training follows too) unless told otherwise; recent
	// lm-eval does the same (add_bos_token=None), while the lm-eval 0.4
	// releases whose HF model defaults to add_bos_token=False need BOS off.
	BOS bool
	// Samples, when set, receives one record per document (-log-samples).
	Samples *datasets.SampleWriter
	// Progress, when set, shows a progress bar with docs/s.
	Progress io.Writer
}

// DataDir returns the data directory of a task: override when set, else
// <task> in the assets directory $SALR_ASSETS (see datasets/assets).
func DataDir(task, override string) (string, error) {
	if override != "" {
		return override, nil
	}
	dir := os.Getenv(assets.Env)
	if dir == "" {
		return "", fmt.Errorf("eval: no data directory for %s: pass -data DIR or set %s", task, assets.Env)
	}
	return filepath.Join(dir, task), nil
}

// validate checks the options and fills in defaults.
func (o *Options) validate() error {
	switch o.Task {
	case TaskGSM8K:
		if len(o.Subjects) > 0 {
			return fmt.Errorf("eval: subjects are an MMLU option, not %s's", o.Task)
		}
	case TaskMMLU:
	default:
		return fmt.Errorf("eval: unknown task %q (want %s or %s)", o.Task, TaskGSM8K, TaskMMLU)
	}
	if err := CheckTemplate(o.Task, o.Template, o.Shots); err != nil {
		return err
	}
	if o.Template == "" {
		o.Template = TemplateLMEval
	}
	if o.DataDir == "" {
		return fmt.Errorf("eval: no data directory")
	}
	if o.Shots < 0 {
		return fmt.Errorf("eval: shots %d must be >= 0", o.Shots)
	}
	if o.Limit < 0 {
		return fmt.Errorf("eval: limit %d must be >= 0 (0 evaluates all documents)", o.Limit)
	}
	if o.Batch < 1 {
		return fmt.Errorf("eval: batch %d must be >= 1", o.Batch)
	}
	if o.MaxNewTokens < 0 {
		return fmt.Errorf("eval: max new tokens %d must be >= 0 (0 means %d)", o.MaxNewTokens, DefaultMaxNewTokensFor(o.Template))
	}
	if o.MaxNewTokens == 0 {
		o.MaxNewTokens = DefaultMaxNewTokensFor(o.Template)
	}
	return nil
}

// CheckTemplate reports whether a template ("" is lm-eval) applies to a
// task with that many shots: metamath is GSM8K's and zero-shot.
func CheckTemplate(task, template string, shots int) error {
	switch template {
	case "", TemplateLMEval:
	case TemplateMetaMath:
		if task != TaskGSM8K {
			return fmt.Errorf("eval: the %s template is for %s, not %s", template, TaskGSM8K, task)
		}
		if shots != 0 {
			return fmt.Errorf("eval: the %s template is zero-shot, as MetaMath evaluates; got %d shots", template, shots)
		}
	default:
		return fmt.Errorf("eval: unknown template %q (want %s)", template, strings.Join(Templates, " or "))
	}
	return nil
}

// evaluation is one run in progress.
type evaluation struct {
	ctx     context.Context
	opt     Options
	runner  *model.Runner
	enc     *encoder
	context int // tokens the model can attend to
	res     *Results
	bar     *progress
}

// Run evaluates m on opt.Task and returns the scores. It stops early with
// ctx's error when ctx is cancelled. The caller fills in Results.Model and
// Results.Adapters.
func Run(ctx context.Context, m *model.Loaded, opt Options) (*Results, error) {
	if err := opt.validate(); err != nil {
		return nil, err
	}
	enc, err := newEncoder(m.Tokenizer, opt.BOS)
	if err != nil {
		return nil, err
	}
	contextLen := m.Params.Config.MaxPositions
	if contextLen <= 0 {
		contextLen = defaultContext
	}
	e := &evaluation{
		ctx: ctx, opt: opt, runner: model.NewRunner(m.Params), enc: enc, context: contextLen,
		res: &Results{
			Task: opt.Task, Template: opt.Template, Shots: opt.Shots, BOS: opt.BOS, ContextLength: contextLen,
			Metrics:    map[string]Number{},
			Truncation: Truncation{DocsByShots: map[int]int{}},
			Date:       time.Now().UTC().Format(time.RFC3339),
			Paths:      bitmap.CurrentPaths(),
		},
	}
	if opt.Limit > 0 {
		e.res.Limit = &opt.Limit
	}
	start := time.Now()
	switch opt.Task {
	case TaskMMLU:
		err = e.runMMLU()
	case TaskGSM8K:
		err = e.runGSM8K()
	}
	e.bar.finish(err == nil)
	if err != nil {
		return nil, err
	}
	wall := time.Since(start).Seconds()
	e.res.Timing.WallSeconds = wall
	if wall > 0 {
		e.res.Timing.DocsPerSecond = float64(e.res.Docs) / wall
	}
	return e.res, nil
}

// countShots records that a prompt used `used` of the `available` shots
// (the requested number, or fewer for an MMLU subject with few dev questions).
func (e *evaluation) countShots(used, available int) {
	t := &e.res.Truncation
	t.DocsByShots[used]++
	if dropped := available - used; dropped > 0 {
		t.DocsWithDroppedShots++
		t.DroppedShots += dropped
	}
}

// writeSample logs one record when sample logging is on.
func (e *evaluation) writeSample(r datasets.SampleRecord) error {
	if e.opt.Samples == nil {
		return nil
	}
	return e.opt.Samples.Write(r)
}

// batches calls fn with consecutive index ranges [lo, hi) of at most
// e.opt.Batch of n items, stopping at the first error or cancellation.
func (e *evaluation) batches(n int, fn func(lo, hi int) error) error {
	for lo := 0; lo < n; lo += e.opt.Batch {
		if err := e.ctx.Err(); err != nil {
			return err
		}
		hi := min(lo+e.opt.Batch, n)
		if err := fn(lo, hi); err != nil {
			return err
		}
		e.bar.add(hi - lo)
	}
	return nil
}
