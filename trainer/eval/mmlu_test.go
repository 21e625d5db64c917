package eval

import (
	"fmt"
	"maps"
	"math"
	"path/filepath"
	"strings"
	"testing"

	"github.com/salr-go/salr/datasets"
	"github.com/salr-go/salr/model"
)

// writeLawData writes an MMLU directory with one subject, professional_law:
// five short dev questions and three test questions, of which the second is
// too long for a 512-token context even without shots and the third only
// fits with fewer shots.
func writeLawData(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	var dev, test strings.Builder
	for i, ans := range []string{"A", "B", "C", "D", "A"} {
		dev.WriteString(mmluCSVRow("Which rule is number "+string(rune('1'+i))+"?", [4]string{"one", "two", "three", "four"}, ans))
	}
	test.WriteString(mmluCSVRow("  Is a promise, \"made freely\", binding?\n", [4]string{"yes", "no", "only in writing", "never"}, "C"))
	test.WriteString(mmluCSVRow("The court held that "+strings.Repeat("the tenant, who had paid rent late, ", 90)+"what follows?", [4]string{"eviction", "damages", "nothing", "appeal"}, "B"))
	test.WriteString(mmluCSVRow("A witness said "+strings.Repeat("she saw the car ", 60)+"is that hearsay?", [4]string{"yes", "no", "partly", "unclear"}, "A"))
	writeFile(t, dir, "dev/professional_law_dev.csv", dev.String())
	writeFile(t, dir, "test/professional_law_test.csv", test.String())
	return dir
}

// TestMMLUSharedPrefixMatchesScratch checks the efficient path (shared
// few-shot prefix cache, token-level reuse, batched documents, forked caches
// for multi-token continuations, cut prompts) against scoring every
// continuation from an empty cache as lm-eval does.
func TestMMLUSharedPrefixMatchesScratch(t *testing.T) {
	m := loadStories(t)
	mmluDir := filepath.Join(assetsDir(t), "mmlu")
	cases := []struct {
		name    string
		opt     Options
		wantCut bool
		gpt2    bool // the random GPT-2-vocabulary model instead of stories260K
	}{
		{"two subjects, batch 2", Options{DataDir: mmluDir, Shots: 5, Limit: 2, Batch: 2,
			Subjects: []string{"abstract_algebra", "high_school_geography"}}, false, false},
		{"with BOS, batch 2", Options{DataDir: mmluDir, Shots: 5, Limit: 3, Batch: 2, BOS: true,
			Subjects: []string{"marketing"}}, false, false},
		{"long prompts", Options{DataDir: writeLawData(t), Shots: 5, Batch: 2}, true, false},
		{"prefix tokens differ", Options{DataDir: mmluDir, Shots: 3, Limit: 3, Batch: 2,
			Subjects: []string{"anatomy"}}, false, true},
	}
	gpt2 := loadRandomGPT2(t)
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			m := m
			if tc.gpt2 {
				m = gpt2
			}
			runner := model.NewRunner(m.Params)
			tc.opt.Task = TaskMMLU
			res, recs := runWithSamples(t, m, tc.opt)
			enc := plainEncoder{Tokenizer: m.Tokenizer, bos: tc.opt.BOS}
			if tc.gpt2 {
				assertPrefixMismatch(t, enc, recs[0].Prompt)
			}
			multiToken := false
			for _, rec := range recs {
				var ctx []int
				conts := make([][]int, 4)
				for c, cont := range datasets.MMLUContinuations {
					var err error
					if ctx, conts[c], err = datasets.EncodePair(enc, rec.Prompt, cont); err != nil {
						t.Fatal(err)
					}
					multiToken = multiToken || len(conts[c]) > 1
				}
				want := scratchLogLikelihoods(t, runner, ctx, conts)
				for c, cont := range datasets.MMLUContinuations {
					if got := rec.Response.LogLikelihoods[c]; math.Abs(got-want[c]) > 1e-4 {
						t.Errorf("%s doc %d %q: log-likelihood %.6f, from scratch %.6f", rec.Task, rec.DocID, cont, got, want[c])
					}
				}
			}
			if !multiToken && !tc.gpt2 {
				t.Error("no multi-token continuation was exercised")
			}
			if got := res.Truncation.PromptsCut > 0; got != tc.wantCut {
				t.Errorf("prompts cut = %d, want cut: %v", res.Truncation.PromptsCut, tc.wantCut)
			}
			if res.Timing.ReusedTokens == 0 || res.Timing.ReusedTokens >= res.Timing.PromptTokens {
				t.Errorf("reused %d of %d prompt tokens: the shared prefix was not used as expected",
					res.Timing.ReusedTokens, res.Timing.PromptTokens)
			}
		})
	}
}

// TestMMLUPromptsFollowLMEval checks the logged prompts against
// datasets.MMLUPrompt with the first k dev questions, the shot dropping
// (oldest first, only as many as needed), predictions and the aggregation.
func TestMMLUPromptsFollowLMEval(t *testing.T) {
	m := loadStories(t)
	dir := filepath.Join(assetsDir(t), "mmlu")
	subjects := []string{"astronomy", "sociology"}
	const shots = 5
	res, recs := runWithSamples(t, m, Options{Task: TaskMMLU, DataDir: dir, Shots: shots, Limit: 4, Batch: 3, Subjects: subjects})

	test, err := datasets.ReadMMLU(dir, datasets.MMLUSplitTest, subjects)
	if err != nil {
		t.Fatal(err)
	}
	dev, err := datasets.ReadMMLU(dir, datasets.MMLUSplitDev, subjects)
	if err != nil {
		t.Fatal(err)
	}
	docs := map[string][]datasets.MMLUDoc{}
	devBySubject := map[string][]datasets.MMLUDoc{}
	for _, d := range test {
		docs[d.Subject] = append(docs[d.Subject], d)
	}
	for _, d := range dev {
		devBySubject[d.Subject] = append(devBySubject[d.Subject], d)
	}
	enc := plainEncoder{Tokenizer: m.Tokenizer}
	need := func(prompt string) int {
		longest := 0
		var ctx []int
		for _, c := range datasets.MMLUContinuations {
			var ids []int
			var err error
			if ctx, ids, err = datasets.EncodePair(enc, prompt, c); err != nil {
				t.Fatal(err)
			}
			longest = max(longest, len(ids))
		}
		return len(ctx) + longest - 1
	}
	correct := map[string]int{}
	if len(recs) != 2*4 {
		t.Fatalf("%d records, want 8", len(recs))
	}
	for i, rec := range recs {
		subject := strings.TrimPrefix(rec.Task, "mmlu_")
		if want := subjects[i/4]; subject != want || rec.DocID != i%4 {
			t.Fatalf("record %d is %s doc %d, want mmlu_%s doc %d", i, rec.Task, rec.DocID, want, i%4)
		}
		doc := docs[subject][rec.DocID]
		j := rec.Shots
		if j+rec.Truncated != shots {
			t.Errorf("%s/%d: %d shots + %d truncated != %d", subject, rec.DocID, j, rec.Truncated, shots)
		}
		first := devBySubject[subject][:shots]
		if want := datasets.MMLUPrompt(subject, first[shots-j:], doc); rec.Prompt != want {
			t.Errorf("%s/%d: prompt\n%q\nwant\n%q", subject, rec.DocID, rec.Prompt, want)
		}
		if n := need(rec.Prompt); n > 512 {
			t.Errorf("%s/%d: prompt needs %d positions, more than the context", subject, rec.DocID, n)
		}
		if j < shots {
			if n := need(datasets.MMLUPrompt(subject, first[shots-j-1:], doc)); n <= 512 {
				t.Errorf("%s/%d: dropped a shot although %d shots need only %d positions", subject, rec.DocID, j+1, n)
			}
		}
		pred := datasets.MMLUPredict(rec.Response.LogLikelihoods)
		if rec.Response.Prediction != datasets.MMLULetter(pred) || rec.Target != datasets.MMLULetter(doc.Answer) ||
			rec.Correct["acc"] != (pred == doc.Answer) {
			t.Errorf("%s/%d: prediction %s, target %s, correct %v inconsistent with %v and answer %d",
				subject, rec.DocID, rec.Response.Prediction, rec.Target, rec.Correct, rec.Response.LogLikelihoods, doc.Answer)
		}
		if rec.Correct["acc"] {
			correct[subject]++
		}
	}
	total := 0
	for i, g := range res.Subjects {
		if g.Name != subjects[i] || g.N != 4 || float64(g.Acc) != float64(correct[g.Name])/4 {
			t.Errorf("subject row %+v, want %s with %d/4 correct", g, subjects[i], correct[subjects[i]])
		}
		total += correct[g.Name]
	}
	if got := float64(res.Metrics["acc"]); got != float64(total)/8 {
		t.Errorf("acc %v, want %v", got, float64(total)/8)
	}
}

// TestMMLUPromptLiteral compares one prompt with the lm-eval rendering
// written out by hand.
func TestMMLUPromptLiteral(t *testing.T) {
	m := loadStories(t)
	_, recs := runWithSamples(t, m, Options{Task: TaskMMLU, DataDir: writeLawData(t), Shots: 2, Limit: 1, Batch: 1})
	want := "The following are multiple choice questions (with answers) about professional law.\n\n" +
		"Which rule is number 1?\nA. one\nB. two\nC. three\nD. four\nAnswer: A\n\n" +
		"Which rule is number 2?\nA. one\nB. two\nC. three\nD. four\nAnswer: B\n\n" +
		"Is a promise, \"made freely\", binding?\nA. yes\nB. no\nC. only in writing\nD. never\nAnswer:"
	if recs[0].Prompt != want {
		t.Errorf("prompt\n%q\nwant\n%q", recs[0].Prompt, want)
	}
	if recs[0].Task != "mmlu_professional_law" || recs[0].Target != "C" {
		t.Errorf("task %q target %q", recs[0].Task, recs[0].Target)
	}
}

// TestMMLUCountsTruncation checks the truncation counters on the law data:
// doc 0 keeps 5 shots, doc 1 is cut, doc 2 drops some shots.
func TestMMLUCountsTruncation(t *testing.T) {
	m := loadStories(t)
	res, recs := runWithSamples(t, m, Options{Task: TaskMMLU, DataDir: writeLawData(t), Shots: 5, Batch: 8})
	tr := res.Truncation
	if recs[0].Shots != 5 || recs[1].Shots != 0 || recs[2].Shots == 0 || recs[2].Shots == 5 {
		t.Fatalf("shots per doc %d, %d, %d; want 5, 0, between", recs[0].Shots, recs[1].Shots, recs[2].Shots)
	}
	wantDropped := 5 + (5 - recs[2].Shots)
	if tr.PromptsCut != 1 || tr.DocsWithDroppedShots != 2 || tr.DroppedShots != wantDropped ||
		tr.DocsByShots[5] != 1 || tr.DocsByShots[0] != 1 || tr.DocsByShots[recs[2].Shots] != 1 {
		t.Errorf("truncation %+v, want 1 cut, 2 docs dropping %d shots", tr, wantDropped)
	}
}

// assertPrefixMismatch fails unless the tokens of prompt's few-shot prefix
// (everything up to the last "\n\n") are not a prefix of the prompt's tokens,
// the case where reusing the whole prefix cache would be wrong.
func assertPrefixMismatch(t *testing.T, enc plainEncoder, prompt string) {
	t.Helper()
	cut := strings.LastIndex(prompt, "\n\n") + 2
	prefix, err := enc.Encode(prompt[:cut])
	if err != nil {
		t.Fatal(err)
	}
	whole, err := enc.Encode(prompt)
	if err != nil {
		t.Fatal(err)
	}
	if n := datasets.CommonPrefixLen(prefix, whole); n == len(prefix) {
		t.Fatalf("test data: the prefix's %d tokens are a prefix of the prompt's; the boundary case is not exercised", n)
	}
}

// TestMMLUShotsMatchedBySubject checks that dev questions are matched to
// test subjects by name: an empty anatomy_dev.csv gives anatomy 0 shots (not
// astronomy's), a subject with fewer dev questions than asked uses what it
// has, and the results name both.
func TestMMLUShotsMatchedBySubject(t *testing.T) {
	m := loadStories(t)
	dir := t.TempDir()
	dev := func(subject string, n int) string {
		var b strings.Builder
		for i := range n {
			b.WriteString(mmluCSVRow(fmt.Sprintf("Dev question %d of %s?", i, subject), [4]string{"a", "b", "c", "d"}, "B"))
		}
		return b.String()
	}
	for _, s := range []string{"anatomy", "astronomy", "virology"} {
		writeFile(t, dir, "test/"+s+"_test.csv", mmluCSVRow("Test question of "+s+"?", [4]string{"w", "x", "y", "z"}, "C"))
	}
	writeFile(t, dir, "dev/anatomy_dev.csv", "")
	writeFile(t, dir, "dev/astronomy_dev.csv", dev("astronomy", 3))
	writeFile(t, dir, "dev/virology_dev.csv", dev("virology", 1))

	res, recs := runWithSamples(t, m, Options{Task: TaskMMLU, DataDir: dir, Shots: 2, Batch: 2})
	wantShots := map[string]int{"anatomy": 0, "astronomy": 2, "virology": 1}
	for _, r := range recs {
		subject := strings.TrimPrefix(r.Task, "mmlu_")
		if r.Shots != wantShots[subject] || r.Truncated != 0 {
			t.Errorf("%s: %d shots, %d truncated; want %d, 0", subject, r.Shots, r.Truncated, wantShots[subject])
		}
		for _, other := range []string{"anatomy", "astronomy", "virology"} {
			if other != subject && strings.Contains(r.Prompt, "of "+other+"?") {
				t.Errorf("%s prompt holds a question of %s:\n%s", subject, other, r.Prompt)
			}
		}
		if n := strings.Count(r.Prompt, "Dev question"); n != wantShots[subject] {
			t.Errorf("%s prompt has %d dev questions, want %d", subject, n, wantShots[subject])
		}
	}
	if want := map[string]int{"anatomy": 0, "virology": 1}; !maps.Equal(res.FewerShots, want) {
		t.Errorf("FewerShots %v, want %v", res.FewerShots, want)
	}
	if tr := res.Truncation; tr.DocsWithDroppedShots != 0 || tr.DroppedShots != 0 {
		t.Errorf("truncation %+v: missing dev questions counted as dropped to fit the context", tr)
	}
	if md := res.Markdown(); !strings.Contains(md, "anatomy (0), virology (1)") {
		t.Errorf("Markdown does not name the subjects with fewer shots:\n%s", md)
	}
}
