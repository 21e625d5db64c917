package eval

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/salr-go/salr/datasets"
	"github.com/salr-go/salr/model"
)

// writeSumsData writes a GSM8K directory of short addition problems (12 in
// train, 6 in test), so that five shots fit a 512-token context.
func writeSumsData(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	var train, test strings.Builder
	for i := 0; i < 12; i++ {
		a, b := i+2, 3*i+1
		train.WriteString(gsm8kLine(t, fmt.Sprintf("Tom has %d apples and finds %d more. How many now?", a, b),
			fmt.Sprintf("He has %d+%d=<<%d+%d=%d>>%d apples.\n#### %d", a, b, a, b, a+b, a+b, a+b)))
	}
	for i := 0; i < 6; i++ {
		a, b := 10+i, 7*i
		test.WriteString(gsm8kLine(t, fmt.Sprintf("Sue had %d cats and got %d more. How many cats?", a, b),
			fmt.Sprintf("%d+%d=%d\n#### %d", a, b, a+b, a+b)))
	}
	writeFile(t, dir, GSM8KTrainFile, train.String())
	writeFile(t, dir, GSM8KTestFile, test.String())
	return dir
}

// TestGSM8KBatchedEqualsUnbatched checks that batching does not change the
// greedy generations, and that -limit N gives the first N documents the
// shots and outputs of a full run.
func TestGSM8KBatchedEqualsUnbatched(t *testing.T) {
	m := loadStories(t)
	dir := writeSumsData(t)
	opt := Options{Task: TaskGSM8K, DataDir: dir, Shots: 3, MaxNewTokens: 24}
	opt.Batch = 4
	batched, batchedRecs := runWithSamples(t, m, opt)
	opt.Batch = 1
	single, singleRecs := runWithSamples(t, m, opt)
	if !reflect.DeepEqual(batchedRecs, singleRecs) {
		for i := range batchedRecs {
			if !reflect.DeepEqual(batchedRecs[i], singleRecs[i]) {
				t.Errorf("doc %d: batched %+v\nunbatched %+v", i, batchedRecs[i], singleRecs[i])
			}
		}
	}
	if !reflect.DeepEqual(batched.Metrics, single.Metrics) || !reflect.DeepEqual(batched.Counts, single.Counts) {
		t.Errorf("metrics differ: %v %v vs %v %v", batched.Metrics, batched.Counts, single.Metrics, single.Counts)
	}
	opt.Limit, opt.Batch = 3, 2
	_, limited := runWithSamples(t, m, opt)
	if !reflect.DeepEqual(limited, singleRecs[:3]) {
		t.Errorf("-limit 3 records differ from the first 3 of a full run:\n%+v\n%+v", limited, singleRecs[:3])
	}
	for _, r := range singleRecs {
		if strings.Contains(r.Response.Text, "Question:") {
			t.Errorf("doc %d: response not cut at the stop sequence: %q", r.DocID, r.Response.Text)
		}
	}
}

// TestGSM8KPromptsAndScores checks the logged prompts against the lm-eval
// rendering with shots from an independent sampler, and the scores against
// the answers extracted from the logged responses.
func TestGSM8KPromptsAndScores(t *testing.T) {
	m := loadStories(t)
	dir := writeSumsData(t)
	const shots = 5
	res, recs := runWithSamples(t, m, Options{Task: TaskGSM8K, DataDir: dir, Shots: shots, Batch: 4, MaxNewTokens: 16})
	train, err := datasets.ReadGSM8K(dir + "/" + GSM8KTrainFile)
	if err != nil {
		t.Fatal(err)
	}
	test, err := datasets.ReadGSM8K(dir + "/" + GSM8KTestFile)
	if err != nil {
		t.Fatal(err)
	}
	sampler := datasets.NewFewShotSampler(len(train), 1234)
	var strict, flexible int
	for i, r := range recs {
		idx, err := sampler.Sample(shots)
		if err != nil {
			t.Fatal(err)
		}
		var docShots []datasets.GSM8KDoc
		for _, j := range idx {
			docShots = append(docShots, train[j])
		}
		if r.DocID != i || r.Shots != shots || r.Truncated != 0 {
			t.Errorf("record %d: doc %d with %d shots (%d truncated)", i, r.DocID, r.Shots, r.Truncated)
		}
		if want := datasets.GSM8KPrompt(docShots, test[i]); r.Prompt != want {
			t.Errorf("doc %d prompt\n%q\nwant\n%q", i, r.Prompt, want)
		}
		if !strings.HasSuffix(r.Prompt, "\n\nQuestion: "+test[i].Question+"\nAnswer:") || r.Target != test[i].Answer {
			t.Errorf("doc %d: prompt does not end with its question, or target %q", i, r.Target)
		}
		j := datasets.JudgeGSM8K(r.Response.Text, test[i].Answer)
		if r.Response.Strict != j.Strict || r.Response.Flexible != j.Flexible ||
			r.Correct["strict-match"] != j.StrictCorrect || r.Correct["flexible-extract"] != j.FlexibleCorrect {
			t.Errorf("doc %d: logged %+v %v, judged %+v", i, r.Response, r.Correct, j)
		}
		if j.StrictCorrect {
			strict++
		}
		if j.FlexibleCorrect {
			flexible++
		}
	}
	if c := res.Counts["strict-match"]; c.Correct != strict || c.N != len(test) {
		t.Errorf("strict-match count %+v, want %d/%d", c, strict, len(test))
	}
	if c := res.Counts["flexible-extract"]; c.Correct != flexible || c.N != len(test) {
		t.Errorf("flexible-extract count %+v, want %d/%d", c, flexible, len(test))
	}
	if got := float64(res.Metrics["exact_match,strict-match"]); got != float64(strict)/float64(len(test)) {
		t.Errorf("exact_match,strict-match = %v", got)
	}
}

// TestGSM8KLongPrompts checks the three ways a prompt can be too long: shots
// are dropped, the generation is capped, or the zero-shot prompt is cut to
// its last context - max_new_tokens tokens (compared with Runner.Generate on
// those tokens).
func TestGSM8KLongPrompts(t *testing.T) {
	m := loadStories(t)
	dir := t.TempDir()
	var train strings.Builder
	for i := 0; i < 6; i++ {
		train.WriteString(gsm8kLine(t, "How many legs do "+fmt.Sprint(i+2)+" dogs have? "+strings.Repeat("Think. ", 20),
			"Each dog has 4 legs, so "+strings.Repeat("we count them all again. ", 6)+"\n#### "+fmt.Sprint(4*(i+2))))
	}
	var long strings.Builder
	long.WriteString("A farmer counts his animals. ")
	animals := []string{"sheep", "cows", "hens", "goats", "pigs", "ducks", "geese"}
	for i := 0; i < 90; i++ {
		fmt.Fprintf(&long, "Field %d has %d %s. ", i, (i*37)%101, animals[i%len(animals)])
	}
	long.WriteString("How many animals are there?")
	medium := "A boy reads " + strings.Repeat("a book ", 80) + "how many books?"
	test := gsm8kLine(t, "What is 2 and 2?", "#### 4") + gsm8kLine(t, medium, "#### 50") + gsm8kLine(t, long.String(), "#### 60")
	writeFile(t, dir, GSM8KTrainFile, train.String())
	writeFile(t, dir, GSM8KTestFile, test)
	const budget = 200
	res, recs := runWithSamples(t, m, Options{Task: TaskGSM8K, DataDir: dir, Shots: 2, Batch: 3, MaxNewTokens: budget})

	tok := m.Tokenizer
	length := func(s string) int {
		ids, err := tok.Encode(s)
		if err != nil {
			t.Fatal(err)
		}
		return len(ids)
	}
	if n := length(recs[1].Prompt); n+budget <= 512 || n >= 512 {
		t.Fatalf("test data: medium prompt has %d tokens, want capped generation", n)
	}
	if n := length(recs[2].Prompt); n < 512 {
		t.Fatalf("test data: long prompt has %d tokens, want more than the context", n)
	}
	tr := res.Truncation
	if recs[0].Shots == 0 || recs[1].Shots != 0 || recs[2].Shots != 0 || tr.GenerationsCapped != 1 || tr.PromptsCut != 1 ||
		tr.DocsWithDroppedShots != 2+btoi(recs[0].Shots < 2) {
		t.Errorf("shots %d %d %d, truncation %+v", recs[0].Shots, recs[1].Shots, recs[2].Shots, tr)
	}

	if want := length(recs[0].Prompt) + length(recs[1].Prompt) + 512 - budget; res.Timing.PromptTokens != want {
		t.Errorf("prompt tokens %d, want %d (the cut prompt counting 512-%d)", res.Timing.PromptTokens, want, budget)
	}

	// The cut prompt: the model sees the last 512-200 tokens.
	ids, err := tok.Encode(recs[2].Prompt)
	if err != nil {
		t.Fatal(err)
	}
	ids = ids[len(ids)-(512-budget):]
	greedy, err := model.NewSampler(0, 1, 0)
	if err != nil {
		t.Fatal(err)
	}
	gen, err := model.NewRunner(m.Params).Generate([][]int{ids}, model.GenerateOptions{
		MaxNewTokens: budget, Sampler: greedy, StopIDs: []int{tok.EOS()}})
	if err != nil {
		t.Fatal(err)
	}
	promptText := tok.Decode(ids)
	all := tok.Decode(append(append([]int(nil), ids...), gen[0]...))
	if !strings.HasPrefix(all, promptText) {
		t.Fatalf("decoded prompt+generation does not start with the decoded prompt")
	}
	want := datasets.TruncateAtStops(all[len(promptText):], datasets.GSM8KStops)
	if recs[2].Response.Text != want {
		t.Errorf("cut prompt generated\n%q\nwant\n%q", recs[2].Response.Text, want)
	}
}

func btoi(b bool) int {
	if b {
		return 1
	}
	return 0
}

// metaMathRecord is a -log-samples line of the metamath template.
type metaMathRecord struct {
	DocID    int    `json:"doc_id"`
	Shots    int    `json:"n_shot"`
	Prompt   string `json:"prompt"`
	Response struct {
		Text     string  `json:"text"`
		MetaMath string  `json:"metamath"`
		Strict   *string `json:"strict-match"`
	} `json:"response"`
	Correct map[string]bool `json:"correct"`
}

// TestGSM8KMetaMathTemplate runs the metamath template on stories260K and
// checks the prompts byte for byte, the generations against an independent
// greedy generation with MetaMath's stops, the scoring against the
// extraction, and what results.json records.
func TestGSM8KMetaMathTemplate(t *testing.T) {
	m := loadStories(t)
	dir := writeSumsData(t)
	// The answer text of the last document is what a MetaMath model writes,
	// so the gold integer is read from the "#### " line as MetaMath does.
	opt := Options{Task: TaskGSM8K, Template: TemplateMetaMath, DataDir: dir, Limit: 3, Batch: 2, MaxNewTokens: 20, BOS: true}
	var buf bytes.Buffer
	opt.Samples = datasets.NewSampleWriter(&buf)
	res, err := Run(context.Background(), m, opt)
	if err != nil {
		t.Fatal(err)
	}
	test, err := datasets.ReadGSM8K(filepath.Join(dir, GSM8KTestFile))
	if err != nil {
		t.Fatal(err)
	}
	var recs []metaMathRecord
	for _, line := range strings.Split(strings.TrimSpace(buf.String()), "\n") {
		var r metaMathRecord
		if err := json.Unmarshal([]byte(line), &r); err != nil {
			t.Fatal(err)
		}
		recs = append(recs, r)
	}
	if len(recs) != 3 {
		t.Fatalf("%d records", len(recs))
	}
	greedy, _ := model.NewSampler(0, 1, 0)
	correct := 0
	for i, r := range recs {
		want := "Below is an instruction that describes a task. Write a response that appropriately completes the request.\n\n" +
			"### Instruction:\n" + test[i].Question + "\n\n### Response: Let's think step by step."
		if r.Prompt != want || r.Shots != 0 || r.Response.Strict != nil {
			t.Errorf("doc %d: prompt %q, %d shots, strict-match %v", i, r.Prompt, r.Shots, r.Response.Strict)
		}
		ref, err := model.GenerateText(model.NewRunner(m.Params), m.Tokenizer, []string{want},
			model.TextOptions{MaxNewTokens: 20, Sampler: greedy, Stops: datasets.MetaMathStops})
		if err != nil {
			t.Fatal(err)
		}
		if r.Response.Text != ref[0] {
			t.Errorf("doc %d: generated %q, reference %q", i, r.Response.Text, ref[0])
		}
		for _, stop := range datasets.MetaMathStops {
			if strings.Contains(r.Response.Text, stop) {
				t.Errorf("doc %d: generation %q holds the stop %q", i, r.Response.Text, stop)
			}
		}
		v, ok := datasets.ExtractMetaMath(r.Response.Text)
		gold, _ := datasets.GSM8KGoldInt(test[i].Answer)
		if r.Response.MetaMath != datasets.FormatMetaMathAnswer(v, ok) || r.Correct["metamath"] != (ok && v == float64(gold)) {
			t.Errorf("doc %d: scored %q %v for %q", i, r.Response.MetaMath, r.Correct, r.Response.Text)
		}
		if r.Correct["metamath"] {
			correct++
		}
	}
	if res.Template != TemplateMetaMath || res.Shots != 0 || !res.BOS || res.MaxNewTokens != 20 || res.FewShotSeed != 0 ||
		!reflect.DeepEqual(res.StopSequences, datasets.MetaMathStops) || len(res.Extraction) != 1 || res.Extraction["metamath"] == "" {
		t.Errorf("results %+v", res)
	}
	if _, ok := res.Metrics["exact_match,strict-match"]; ok || len(res.Metrics) != 2 {
		t.Errorf("metrics %v, want exact_match,metamath and its stderr only", res.Metrics)
	}
	metric, value := res.Headline()
	if metric != "exact_match,metamath" || float64(value) != float64(correct)/3 || res.Counts["metamath"] != (Count{correct, 3}) {
		t.Errorf("headline %s = %v, counts %v; want %d/3", metric, value, res.Counts, correct)
	}
	if md := res.Markdown(); !strings.Contains(md, "| gsm8k | metamath ") || !strings.Contains(md, "metamath template, BOS on") {
		t.Errorf("markdown:\n%s", md)
	}
	data, err := res.JSON()
	if err != nil {
		t.Fatal(err)
	}
	for _, field := range []string{`"template": "metamath"`, `"bos": true`, `"shots": 0`, `"exact_match,metamath":`, `"stop_sequences": [`, `"extraction": {`} {
		if !strings.Contains(string(data), field) {
			t.Errorf("results.json lacks %s:\n%s", field, data)
		}
	}
}

// TestTemplateDefaults checks the defaults each template brings.
func TestTemplateDefaults(t *testing.T) {
	if DefaultShotsFor(TemplateMetaMath) != 0 || DefaultShotsFor(TemplateLMEval) != 5 || DefaultShotsFor("") != 5 {
		t.Error("default shots")
	}
	o := Options{Task: TaskGSM8K, Template: TemplateMetaMath, DataDir: "x", Batch: 1}
	if err := o.validate(); err != nil || o.MaxNewTokens != 512 {
		t.Errorf("metamath budget %d, %v; want MetaMath's 512", o.MaxNewTokens, err)
	}
	o = Options{Task: TaskGSM8K, DataDir: "x", Batch: 1}
	if err := o.validate(); err != nil || o.MaxNewTokens != 256 || o.Template != TemplateLMEval {
		t.Errorf("lm-eval budget %d, template %q, %v; want 256", o.MaxNewTokens, o.Template, err)
	}
}
