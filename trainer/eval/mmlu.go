package eval

import (
	"fmt"
	"slices"
	"strings"

	"github.com/salr-go/salr/datasets"
	"github.com/salr-go/salr/kernels"
	"github.com/salr-go/salr/model"
)

// mmluSubject is one subject's test documents and few-shot examples.
type mmluSubject struct {
	name  string
	docs  []datasets.MMLUDoc
	shots []datasets.MMLUDoc // the first k dev questions
}

// runMMLU evaluates the MMLU test split: per subject, the log-likelihood of
// " A".." D" after each prompt, arg-max prediction, accuracy aggregated as
// lm-eval does.
func (e *evaluation) runMMLU() error {
	subjects, err := e.readMMLU()
	if err != nil {
		return err
	}
	for _, s := range subjects {
		e.res.Docs += len(s.docs)
	}
	e.bar = newProgress(e.opt.Progress, e.res.Docs, TaskMMLU)
	perSubject := make(map[string]datasets.Accuracy, len(subjects))
	pools := &mmluCaches{
		docs:  cachePool{runner: e.runner, limit: e.context},
		tails: cachePool{runner: e.runner, limit: e.context},
	}
	for _, s := range subjects {
		acc, err := e.scoreSubject(s, pools)
		if err != nil {
			return err
		}
		perSubject[s.name] = acc
	}
	scores, err := datasets.AggregateMMLU(perSubject)
	if err != nil {
		return err
	}
	group := func(g datasets.GroupScore, category string) Group {
		return Group{Name: g.Name, Category: category, Acc: Number(g.Acc), Stderr: Number(g.Stderr), N: g.N}
	}
	e.res.Metrics[metricAcc] = Number(scores.Overall.Acc)
	e.res.Metrics[metricAccStderr] = Number(scores.Overall.Stderr)
	for _, g := range scores.Categories {
		e.res.Categories = append(e.res.Categories, group(g, ""))
	}
	for _, g := range scores.Subjects {
		e.res.Subjects = append(e.res.Subjects, group(g, datasets.MMLUCategory(g.Name)))
	}
	return nil
}

// readMMLU reads the test questions (the first Limit of each subject) and,
// with shots, the first Shots dev questions of each subject, matched by
// subject name. A test file without questions is an error; a subject with
// fewer dev questions than Shots uses all it has and is listed in
// Results.FewerShots.
func (e *evaluation) readMMLU() ([]mmluSubject, error) {
	test, err := datasets.ReadMMLUSubjects(e.opt.DataDir, datasets.MMLUSplitTest, e.opt.Subjects)
	if err != nil {
		return nil, err
	}
	subjects := make([]mmluSubject, len(test))
	names := make([]string, len(test))
	for i, f := range test {
		if datasets.MMLUCategory(f.Subject) == "" {
			return nil, fmt.Errorf("eval: %q (from %s) is not one of MMLU's 57 subjects", f.Subject, e.opt.DataDir)
		}
		if len(f.Docs) == 0 {
			return nil, fmt.Errorf("eval: %s: MMLU test file has no questions (remove it or pick subjects with -subjects)", f.Path)
		}
		docs := f.Docs
		if e.opt.Limit > 0 && len(docs) > e.opt.Limit {
			docs = docs[:e.opt.Limit]
		}
		subjects[i] = mmluSubject{name: f.Subject, docs: docs}
		names[i] = f.Subject
	}
	if e.opt.Shots == 0 {
		return subjects, nil
	}
	dev, err := datasets.ReadMMLUSubjects(e.opt.DataDir, datasets.MMLUSplitDev, names)
	if err != nil {
		return nil, err
	}
	devBySubject := make(map[string][]datasets.MMLUDoc, len(dev))
	for _, f := range dev {
		devBySubject[f.Subject] = f.Docs
	}
	for i := range subjects {
		s := &subjects[i]
		d := devBySubject[s.name]
		if len(d) < e.opt.Shots {
			if e.res.FewerShots == nil {
				e.res.FewerShots = map[string]int{}
			}
			e.res.FewerShots[s.name] = len(d)
		}
		s.shots = d[:min(len(d), e.opt.Shots)]
	}
	return subjects, nil
}

// mmluRequest is one question ready for the model.
type mmluRequest struct {
	doc    datasets.MMLUDoc
	prompt string
	shots  int         // shots in the prompt
	cut    bool        // even the zero-shot prompt is too long: its oldest tokens are cut
	ctx    []int       // model input of the prompt (BOS included when asked for)
	conts  [4][]int    // the tokens of " A".." D" after ctx (nil: not scored by this request)
	prefix *mmluPrefix // the shared few-shot prefix, nil without reuse
}

// need is the number of positions scoring the request takes: the prompt and
// all but the last token of the longest continuation.
func (r *mmluRequest) need() int {
	longest := 0
	for _, c := range r.conts {
		longest = max(longest, len(c))
	}
	return len(r.ctx) + longest - 1
}

// mmluPrefix is a subject's few-shot prefix (description and shots) run
// through the model once; documents copy its cache instead of recomputing it.
type mmluPrefix struct {
	tokens []int
	cache  *model.Cache
}

// mmluCaches are the KV caches MMLU scoring reuses from batch to batch.
type mmluCaches struct {
	docs  cachePool // one cache per document of a batch
	tails cachePool // one cache per multi-token continuation run
}

// mmluScorer scores the questions of one subject.
type mmluScorer struct {
	*mmluCaches
	e        *evaluation
	subject  mmluSubject
	prefixes map[int]*mmluPrefix // by number of shots
}

// scoreSubject scores all test questions of a subject in batches, logging
// samples, and returns the subject's accuracy.
func (e *evaluation) scoreSubject(s mmluSubject, pools *mmluCaches) (datasets.Accuracy, error) {
	sc := &mmluScorer{mmluCaches: pools, e: e, subject: s, prefixes: map[int]*mmluPrefix{}}
	var acc datasets.Accuracy
	err := e.batches(len(s.docs), func(lo, hi int) error {
		defer e.enc.forget()
		reqs := make([]*mmluRequest, 0, hi-lo)
		for _, d := range s.docs[lo:hi] {
			r, err := sc.request(d)
			if err != nil {
				return fmt.Errorf("eval: mmlu_%s doc %d: %w", s.name, d.Index, err)
			}
			reqs = append(reqs, r)
		}
		lls, err := sc.score(reqs)
		if err != nil {
			return fmt.Errorf("eval: mmlu_%s docs %d-%d: %w", s.name, lo, hi-1, err)
		}
		for i, r := range reqs {
			rec := datasets.NewMMLUSample(r.shots, len(s.shots)-r.shots, r.prompt, r.doc, lls[i])
			acc.Add(rec.Correct[metricAcc])
			if err := e.writeSample(rec); err != nil {
				return err
			}
		}
		return nil
	})
	return acc, err
}

// request renders a question with as many shots as fit the context and
// encodes its four continuations as lm-eval's loglikelihood requests.
func (sc *mmluScorer) request(doc datasets.MMLUDoc) (*mmluRequest, error) {
	e, shots := sc.e, sc.subject.shots
	k := len(shots)
	r := &mmluRequest{doc: doc}
	var encErr error
	encode := func(prompt string) error {
		if r.ctx != nil && r.prompt == prompt {
			return nil
		}
		r.prompt = prompt
		for c, cont := range datasets.MMLUContinuations {
			ctx, ids, err := datasets.EncodePair(e.enc, prompt, cont)
			if err != nil {
				return err
			}
			r.ctx, r.conts[c] = ctx, ids
		}
		return nil
	}
	render := func(j int) string { return datasets.MMLUPrompt(sc.subject.name, shots[k-j:], doc) }
	fits := func(prompt string) bool {
		if encErr != nil {
			return true
		}
		if encErr = encode(prompt); encErr != nil {
			return true
		}
		return r.need() <= e.context
	}
	prompt, used := datasets.FitShots(k, render, fits)
	if encErr != nil {
		return nil, encErr
	}
	if err := encode(prompt); err != nil {
		return nil, err
	}
	r.shots = used
	e.countShots(used, k)
	if r.need() > e.context {
		// Even the zero-shot prompt is too long: score cuts its oldest
		// tokens, as lm-eval does (see cutWindows).
		r.cut = true
		e.res.Truncation.PromptsCut++
		return r, nil
	}
	p, err := sc.prefix(r)
	if err != nil {
		return nil, err
	}
	r.prefix = p
	return r, nil
}

// prefix returns the few-shot prefix of r's prompt with its cache, running
// it through the model the first time a shot count is seen. The prefix is
// description + shots (the prompt minus the question); how much of it a
// document reuses is decided on tokens, in score.
func (sc *mmluScorer) prefix(r *mmluRequest) (*mmluPrefix, error) {
	if p, ok := sc.prefixes[r.shots]; ok {
		return p, nil
	}
	e, name := sc.e, sc.subject.name
	question := strings.TrimPrefix(datasets.MMLUPrompt(name, nil, r.doc), datasets.MMLUDescription(name))
	text, ok := strings.CutSuffix(r.prompt, question)
	if !ok {
		panic("eval: an MMLU prompt does not end with its question")
	}
	ids, err := e.enc.modelInput(text)
	if err != nil {
		return nil, err
	}
	ids = ids[:min(len(ids), e.context)]
	var p *mmluPrefix
	if len(ids) > 0 {
		cache := e.runner.NewCache(len(ids))
		if _, err := e.runner.Forward([][]int{ids}, []*model.Cache{cache}, false); err != nil {
			return nil, err
		}
		p = &mmluPrefix{tokens: ids, cache: cache}
	}
	sc.prefixes[r.shots] = p
	return p, nil
}

// continuationRun is the part of one or more continuations fed to the model
// after a document's prompt: all but the last token, shared by the
// continuations that differ only in their last token.
type continuationRun struct {
	req   int   // index of the request
	fed   []int // tokens fed after the prompt
	conts []int // indices of the continuations scored from this run
}

// score returns the log-likelihoods of " A".." D" for each request. Each
// document's cache starts as a copy of the longest common token prefix of its
// prompt and the subject's few-shot prefix (always correct, even where the
// tokenizer merges across the boundary), so only the rest of the prompt is
// run. The first token of every continuation is scored from the prompt's last
// row; the further tokens of multi-token continuations are fed on copies of
// the document's cache. Cut requests are scored through windows (see
// cutWindows).
func (sc *mmluScorer) score(all []*mmluRequest) ([][4]float64, error) {
	var reqs []*mmluRequest
	var at []int // index in all of each request in reqs
	for i, r := range all {
		if !r.cut {
			reqs, at = append(reqs, r), append(at, i)
			continue
		}
		windows, err := sc.cutWindows(r)
		if err != nil {
			return nil, err
		}
		for _, w := range windows {
			reqs, at = append(reqs, w), append(at, i)
		}
	}
	e := sc.e
	vocab := e.runner.P.Config.Vocab
	feeds := make([][]int, len(reqs))
	caches := make([]*model.Cache, len(reqs))
	for i, r := range reqs {
		c := sc.docs.get(i, len(r.ctx))
		reuse := 0
		if r.prefix != nil {
			reuse = min(datasets.CommonPrefixLen(r.prefix.tokens, r.ctx), len(r.ctx)-1)
			c.CopyFrom(r.prefix.cache, reuse)
		}
		feeds[i], caches[i] = r.ctx[reuse:], c
		e.res.Timing.PromptTokens += len(r.ctx)
		e.res.Timing.ReusedTokens += reuse
	}
	last, err := e.runner.Forward(feeds, caches, false)
	if err != nil {
		return nil, err
	}
	lls := make([][4]float64, len(all))
	var runs []continuationRun
	for i, r := range reqs {
		logp := last[i]
		kernels.LogSoftmax(logp, logp, 1, vocab)
		first := len(runs)
		for c, ids := range r.conts {
			if ids == nil {
				continue // scored by another window of a cut request
			}
			lls[at[i]][c] = float64(logp[ids[0]])
			if len(ids) == 1 {
				continue
			}
			fed := ids[:len(ids)-1]
			j := slices.IndexFunc(runs[first:], func(run continuationRun) bool { return slices.Equal(run.fed, fed) })
			if j < 0 {
				runs = append(runs, continuationRun{req: i, fed: fed})
				j = len(runs) - first - 1
			}
			runs[first+j].conts = append(runs[first+j].conts, c)
		}
	}
	if len(runs) == 0 {
		return lls, nil
	}
	feeds = make([][]int, len(runs))
	tailCaches := make([]*model.Cache, len(runs))
	for j, run := range runs {
		src := caches[run.req]
		c := sc.tails.get(j, src.Len+len(run.fed))
		c.CopyFrom(src, src.Len)
		feeds[j], tailCaches[j] = run.fed, c
	}
	rows, err := e.runner.Forward(feeds, tailCaches, true)
	if err != nil {
		return nil, err
	}
	for j, run := range runs {
		logp := rows[j]
		kernels.LogSoftmax(logp, logp, len(run.fed), vocab)
		for _, c := range run.conts {
			ids := reqs[run.req].conts[c]
			for t := 1; t < len(ids); t++ {
				lls[at[run.req]][c] += float64(logp[(t-1)*vocab+ids[t]])
			}
		}
	}
	return lls, nil
}

// cutWindows turns a request whose prompt does not fit the context even
// without shots into requests lm-eval would score the same: lm-eval feeds
// the last context+1 tokens of prompt+continuation minus the final one, so
// continuations of one length ℓ share the window of the prompt's last
// context+1-ℓ tokens. Each window request holds the continuations of one
// length (the others nil).
func (sc *mmluScorer) cutWindows(r *mmluRequest) ([]*mmluRequest, error) {
	context := sc.e.context
	var windows []*mmluRequest
	byLength := map[int]*mmluRequest{}
	for c, ids := range r.conts {
		n := len(ids)
		if n > context {
			return nil, fmt.Errorf("continuation %q has %d tokens, more than the %d-token context", datasets.MMLUContinuations[c], n, context)
		}
		w, ok := byLength[n]
		if !ok {
			keep := min(len(r.ctx), context+1-n)
			w = &mmluRequest{doc: r.doc, prompt: r.prompt, shots: r.shots, ctx: r.ctx[len(r.ctx)-keep:]}
			byLength[n] = w
			windows = append(windows, w)
		}
		w.conts[c] = ids
	}
	return windows, nil
}
