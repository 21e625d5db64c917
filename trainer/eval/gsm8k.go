package eval

import (
	"fmt"
	"path/filepath"

	"github.com/salr-go/salr/datasets"
	"github.com/salr-go/salr/model"
)

// GSM8K files inside the task's data directory.
const (
	GSM8KTrainFile = "train.jsonl"
	GSM8KTestFile  = "test.jsonl"
)

// gsm8kRequest is one problem ready for generation.
type gsm8kRequest struct {
	id     int // doc_id: index in the test split
	doc    datasets.GSM8KDoc
	prompt string
	shots  int  // shots in the prompt
	cut    bool // the zero-shot prompt alone filled the context and lost its oldest tokens
}

// gsm8kFilters are the answer extractions a template scores with, in the
// order of the results table.
func gsm8kFilters(template string) []string {
	if template == TemplateMetaMath {
		return []string{datasets.GSM8KMetaMath}
	}
	return []string{datasets.GSM8KFlexibleExtract, datasets.GSM8KStrictMatch}
}

// gsm8kExtraction describes each filter's extraction for results.json.
var gsm8kExtraction = map[string]string{
	datasets.GSM8KStrictMatch:     "lm-eval strict-match: first `#### (\\-?[0-9\\.\\,]+)`, exact match after removing `,`, `$`, up to `#### ` and a final `.`",
	datasets.GSM8KFlexibleExtract: "lm-eval flexible-extract: last `(-?[$0-9.,]{2,})|(-?[0-9]+)`, exact match after the same normalisation",
	datasets.GSM8KMetaMath:        "MetaMath eval_gsm8k: first `[\\-+]?\\d*[\\.,/]?\\d+` after the last `The answer is: `, `,` removed (a/b as a fraction), rounded half to even, equal to the gold integer after `#### `",
}

// gsm8kStops are a template's stop sequences (the tokenizer's EOS stops too).
func gsm8kStops(template string) []string {
	if template == TemplateMetaMath {
		return datasets.MetaMathStops
	}
	return datasets.GSM8KStops
}

// runGSM8K evaluates the GSM8K test split: the template's prompts (lm-eval's
// few-shot "Question:/Answer:" or MetaMath's zero-shot instruction), greedy
// generation until a stop sequence, EOS or the token budget, and exact match
// under the template's answer extractions (lm-eval's strict-match and
// flexible-extract, or MetaMath's).
func (e *evaluation) runGSM8K() error {
	testPath := filepath.Join(e.opt.DataDir, GSM8KTestFile)
	test, err := datasets.ReadGSM8K(testPath)
	if err != nil {
		return err
	}
	if e.opt.Limit > 0 && len(test) > e.opt.Limit {
		test = test[:e.opt.Limit]
	}
	metamath := e.opt.Template == TemplateMetaMath
	var golds []int64
	if metamath {
		golds = make([]int64, len(test))
		for i, d := range test {
			if golds[i], err = datasets.GSM8KGoldInt(d.Answer); err != nil {
				return fmt.Errorf("eval: %s: document %d: %w", testPath, i, err)
			}
		}
	}
	var train []datasets.GSM8KDoc
	if e.opt.Shots > 0 {
		path := filepath.Join(e.opt.DataDir, GSM8KTrainFile)
		if train, err = datasets.ReadGSM8K(path); err != nil {
			return err
		}
		if len(train) < e.opt.Shots {
			return fmt.Errorf("eval: %s holds %d problems, fewer than the %d shots asked for", path, len(train), e.opt.Shots)
		}
	}
	filters := gsm8kFilters(e.opt.Template)
	e.res.Docs = len(test)
	e.res.MaxNewTokens = e.opt.MaxNewTokens
	e.res.StopSequences = gsm8kStops(e.opt.Template)
	e.res.Extraction = map[string]string{}
	for _, f := range filters {
		e.res.Extraction[f] = gsm8kExtraction[f]
	}
	if !metamath {
		e.res.FewShotSeed = datasets.LMEvalFewShotSeed
	}
	// lm-eval draws the shots of every document in document order from one
	// generator, so the first N documents get the same shots with or
	// without a limit.
	sampler := datasets.NewFewShotSampler(len(train), datasets.LMEvalFewShotSeed)
	greedy, err := model.NewSampler(0, 1, 0)
	if err != nil {
		return err
	}
	e.bar = newProgress(e.opt.Progress, len(test), TaskGSM8K)
	accs := make([]datasets.Accuracy, len(filters))
	err = e.batches(len(test), func(lo, hi int) error {
		defer e.enc.forget()
		reqs := make([]gsm8kRequest, 0, hi-lo)
		for i := lo; i < hi; i++ {
			idx, err := sampler.Sample(e.opt.Shots)
			if err != nil {
				return fmt.Errorf("eval: gsm8k doc %d: sampling shots: %w", i, err)
			}
			shots := make([]datasets.GSM8KDoc, len(idx))
			for j, t := range idx {
				shots[j] = train[t]
			}
			r, err := e.gsm8kRequest(i, test[i], shots)
			if err != nil {
				return fmt.Errorf("eval: gsm8k doc %d: %w", i, err)
			}
			reqs = append(reqs, r)
		}
		texts, err := e.generate(reqs, greedy)
		if err != nil {
			return fmt.Errorf("eval: gsm8k docs %d-%d: %w", lo, hi-1, err)
		}
		for i, r := range reqs {
			var rec datasets.SampleRecord
			if metamath {
				rec = datasets.NewGSM8KMetaMathSample(r.id, r.prompt, r.doc, golds[r.id], texts[i])
			} else {
				rec = datasets.NewGSM8KSample(r.id, r.shots, e.opt.Shots-r.shots, r.prompt, r.doc, texts[i])
			}
			for j, f := range filters {
				accs[j].Add(rec.Correct[f])
			}
			if err := e.writeSample(rec); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return err
	}
	e.res.Counts = map[string]Count{}
	for j, f := range filters {
		a := accs[j]
		e.res.Metrics[exactMatchKey(f, false)] = Number(a.Value())
		e.res.Metrics[exactMatchKey(f, true)] = Number(a.Stderr())
		e.res.Counts[f] = Count{Correct: a.Correct, N: a.Total}
	}
	return nil
}

// gsm8kRequest renders a problem with as many of its shots as leave room
// for the whole generation budget (lm-eval keeps max_gen_toks free), dropping
// the oldest first. When even the zero-shot prompt leaves less room, the
// generation is capped at what is left; when it fills the context, its
// oldest tokens are cut.
func (e *evaluation) gsm8kRequest(id int, doc datasets.GSM8KDoc, shots []datasets.GSM8KDoc) (gsm8kRequest, error) {
	k, budget := len(shots), e.opt.MaxNewTokens
	var encErr error
	length := func(prompt string) int {
		ids, err := e.enc.modelInput(prompt)
		if err != nil && encErr == nil {
			encErr = err
		}
		return len(ids)
	}
	render := func(j int) string { return datasets.GSM8KPrompt(shots[k-j:], doc) }
	if e.opt.Template == TemplateMetaMath {
		render = func(int) string { return datasets.MetaMathEvalPrompt(doc.Question) }
	}
	fits := func(prompt string) bool { return encErr != nil || length(prompt)+budget <= e.context }
	prompt, used := datasets.FitShots(k, render, fits)
	r := gsm8kRequest{id: id, doc: doc, prompt: prompt, shots: used}
	e.countShots(used, e.opt.Shots)
	n := length(prompt)
	switch {
	case n >= e.context:
		r.cut = true
		n = e.truncatedPromptLen()
		e.res.Truncation.PromptsCut++
	case n+budget > e.context:
		e.res.Truncation.GenerationsCapped++
	}
	e.res.Timing.PromptTokens += n
	return r, encErr
}

// truncatedPromptLen is the number of tokens a GSM8K prompt that fills the
// context keeps: lm-eval keeps the last context - max_gen_toks.
func (e *evaluation) truncatedPromptLen() int {
	return max(e.context-e.opt.MaxNewTokens, 1)
}

// generate runs greedy generation for the requests and returns the texts cut
// at the stop sequences. Prompts that fill the context keep their last
// context - max_new_tokens tokens (lm-eval's left truncation) and run as a
// separate batch; greedy results do not depend on the batch.
func (e *evaluation) generate(reqs []gsm8kRequest, greedy *model.Sampler) ([]string, error) {
	texts := make([]string, len(reqs))
	for _, cut := range []bool{false, true} {
		var idx []int
		var prompts []string
		for i, r := range reqs {
			if r.cut == cut {
				idx = append(idx, i)
				prompts = append(prompts, r.prompt)
			}
		}
		if len(prompts) == 0 {
			continue
		}
		tok := e.enc
		if cut {
			tok = e.enc.truncating(e.truncatedPromptLen())
		}
		out, err := model.GenerateText(e.runner, tok, prompts, model.TextOptions{
			MaxNewTokens: e.opt.MaxNewTokens,
			Sampler:      greedy,
			Stops:        gsm8kStops(e.opt.Template),
		})
		if err != nil {
			return nil, err
		}
		for j, i := range idx {
			texts[i] = out[j]
		}
	}
	return texts, nil
}
