package datasets

import (
	"bytes"
	"encoding/json"
	"errors"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
)

var (
	natalia = GSM8KDoc{
		Question: "Natalia sold clips to 48 of her friends in April, and then she sold half as many clips in May. How many clips did Natalia sell altogether in April and May?",
		Answer:   "Natalia sold 48/2 = <<48/2=24>>24 clips in May.\nNatalia sold 48+24 = <<48+24=72>>72 clips altogether in April and May.\n#### 72",
	}
	weng = GSM8KDoc{
		Question: "Weng earns $12 an hour for babysitting. Yesterday, she just did 50 minutes of babysitting. How much did she earn?",
		Answer:   "Weng earns 12/60 = $<<12/60=0.2>>0.2 per minute.\nWorking 50 minutes, she earned 0.2 x 50 = $<<0.2*50=10>>10.\n#### 10",
	}
	apples = GSM8KDoc{Question: "Tom has 3 apples and buys 4 more. How many apples does he have?", Answer: "3+4=<<3+4=7>>7\n#### 7"}
)

func TestGSM8KPromptZeroShot(t *testing.T) {
	want := "Question: Tom has 3 apples and buys 4 more. How many apples does he have?\nAnswer:"
	if got := GSM8KPrompt(nil, apples); got != want {
		t.Errorf("GSM8KPrompt =\n%q\nwant\n%q", got, want)
	}
}

func TestGSM8KPromptTwoShot(t *testing.T) {
	want := "Question: Natalia sold clips to 48 of her friends in April, and then she sold half as many clips in May. How many clips did Natalia sell altogether in April and May?\n" +
		"Answer: Natalia sold 48/2 = <<48/2=24>>24 clips in May.\nNatalia sold 48+24 = <<48+24=72>>72 clips altogether in April and May.\n#### 72\n\n" +
		"Question: Weng earns $12 an hour for babysitting. Yesterday, she just did 50 minutes of babysitting. How much did she earn?\n" +
		"Answer: Weng earns 12/60 = $<<12/60=0.2>>0.2 per minute.\nWorking 50 minutes, she earned 0.2 x 50 = $<<0.2*50=10>>10.\n#### 10\n\n" +
		"Question: Tom has 3 apples and buys 4 more. How many apples does he have?\nAnswer:"
	if got := GSM8KPrompt([]GSM8KDoc{natalia, weng}, apples); got != want {
		t.Errorf("GSM8KPrompt =\n%q\nwant\n%q", got, want)
	}
}

func TestGSM8KTrainExample(t *testing.T) {
	ex := GSM8KTrainExample(apples)
	want := Example{
		Prompt:   "Question: Tom has 3 apples and buys 4 more. How many apples does he have?\nAnswer: ",
		Response: "3+4=<<3+4=7>>7\n#### 7",
	}
	if ex != want {
		t.Errorf("GSM8KTrainExample = %+v, want %+v", ex, want)
	}
}

// TestGSM8KExtractionAndScoring uses expected values computed with Python's
// re module applying lm-eval's gsm8k v3 filters and exact_match settings.
func TestGSM8KExtractionAndScoring(t *testing.T) {
	const gold = "Janet has 16 eggs.\n#### 1234"
	tests := []struct {
		response                 string
		strict, flexible         string
		strictOK, flexibleOK     bool
		flexibleNormalizedForLog string
	}{
		{"So she makes $1,234.", GSM8KInvalid, "$1,234.", false, true, "1234"},
		{"The answer is 42.", GSM8KInvalid, "42.", false, false, "42"},
		{"#### -5\n#### 7", "-5", "7", false, false, "7"},
		{"no number here", GSM8KInvalid, GSM8KInvalid, false, false, "[invalid]"},
		{"#### 1,234.", "1,234.", "1,234.", true, true, "1234"},
		{"It costs $5 and then #### 1234 dollars", "1234", "1234", true, true, "1234"},
		{"-3 apples and 12.5 pears", GSM8KInvalid, "12.5", false, false, "12.5"},
		{"Answer: 1234.\n", GSM8KInvalid, "1234.", false, true, "1234"},
		{"x = 7\n#### 1234\n\nQuestion: more 99", "1234", "99", true, false, "99"},
		{"#### .", ".", GSM8KInvalid, false, false, "[invalid]"},
		{"5 dollars, total 1,234.00", GSM8KInvalid, "1,234.00", false, false, "1234.00"},
		{"ab 7", GSM8KInvalid, "7", false, false, "7"},
		{"#### $1234", GSM8KInvalid, "$1234", false, true, "1234"},
		{"The total is 1234.", GSM8KInvalid, "1234.", false, true, "1234"},
		{"1234\n", GSM8KInvalid, "1234", false, true, "1234"},
	}
	for _, tc := range tests {
		j := JudgeGSM8K(tc.response, gold)
		want := GSM8KJudgement{Strict: tc.strict, Flexible: tc.flexible, StrictCorrect: tc.strictOK, FlexibleCorrect: tc.flexibleOK}
		if j != want {
			t.Errorf("JudgeGSM8K(%q) = %+v, want %+v", tc.response, j, want)
		}
		if got := NormalizeGSM8K(j.Flexible); got != tc.flexibleNormalizedForLog {
			t.Errorf("NormalizeGSM8K(%q) = %q, want %q", j.Flexible, got, tc.flexibleNormalizedForLog)
		}
	}
}

func TestNormalizeGSM8K(t *testing.T) {
	tests := map[string]string{
		"Janet has 16 eggs.\n#### 1234": "1234",
		"42.\n":                         "42\n", // Python's `\.$` matches before a final newline
		"a.\n.":                         "a.\n", // only the very last dot goes
		"x#### 1#### 2":                 "2",    // up to the last "#### "
		"$1,000,000":                    "1000000",
		"ABC":                           "abc",
		"1.5.":                          "1.5",
	}
	for in, want := range tests {
		if got := NormalizeGSM8K(in); got != want {
			t.Errorf("NormalizeGSM8K(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestTruncateAtStops(t *testing.T) {
	tests := []struct{ in, want string }{
		{" 3+4=7\n#### 7\n\nQuestion: next", " 3+4=7\n#### 7\n\n"},
		{" 7</s>junk<|im_end|>", " 7"},
		{" 7<|im_end|>Question:", " 7"},
		{"no stop", "no stop"},
	}
	for _, tc := range tests {
		if got := TruncateAtStops(tc.in, GSM8KStops); got != tc.want {
			t.Errorf("TruncateAtStops(%q) = %q, want %q", tc.in, got, tc.want)
		}
	}
	if got := TruncateAtStops("abc", []string{"", "c"}); got != "ab" {
		t.Errorf("empty stop handling: got %q", got)
	}
}

func TestReadGSM8KRealAssets(t *testing.T) {
	dir := filepath.Join(assetsDir(t), "gsm8k")
	train, err := ReadGSM8K(filepath.Join(dir, "train.jsonl"))
	if err != nil {
		t.Fatal(err)
	}
	test, err := ReadGSM8K(filepath.Join(dir, "test.jsonl"))
	if err != nil {
		t.Fatal(err)
	}
	if len(train) != 7473 || len(test) != 1319 {
		t.Fatalf("got %d train and %d test problems, want 7473 and 1319", len(train), len(test))
	}
	if train[0] != natalia || train[1] != weng {
		t.Errorf("first train problems = %+v, %+v", train[0], train[1])
	}
	for i, d := range test {
		if !strings.Contains(d.Answer, "#### ") {
			t.Errorf("test problem %d has no #### line", i)
		}
		// The gold answer must score as correct against itself under both filters.
		if j := JudgeGSM8K(d.Answer, d.Answer); !j.StrictCorrect {
			t.Errorf("test problem %d: gold answer does not strict-match itself: %+v", i, j)
		}
	}
	// lm-eval's 5-shot context for the first test problem: shots
	// random.Random(1234).sample(train, 5) = indices [6374 3610 957 61 742].
	s := NewFewShotSampler(len(train), LMEvalFewShotSeed)
	idx, err := s.Sample(5)
	if err != nil {
		t.Fatal(err)
	}
	shots := make([]GSM8KDoc, len(idx))
	for i, j := range idx {
		shots[i] = train[j]
	}
	prompt := GSM8KPrompt(shots, test[0])
	if !strings.HasPrefix(prompt, "Question: "+train[6374].Question+"\nAnswer: "+train[6374].Answer+"\n\nQuestion: "+train[3610].Question) ||
		!strings.HasSuffix(prompt, train[742].Answer+"\n\nQuestion: "+test[0].Question+"\nAnswer:") ||
		strings.Count(prompt, "\nAnswer:") != 6 {
		t.Errorf("5-shot prompt has the wrong shots or layout:\n%s", prompt)
	}
}

func TestReadJSONLMetaMathFields(t *testing.T) {
	path := writeFile(t, t.TempDir(), "mm.jsonl",
		"\xef\xbb\xbf{\"query\": \"What is 2+2?\", \"response\": \"2+2=4\\nThe answer is: 4\", \"type\": \"GSM_Rephrased\"}\r\n"+
			"\n"+
			`{"response": "ok", "query": "Say \"ok\" \u00e9"}`+"\n")
	got, err := ReadJSONL(path, "query", "response")
	if err != nil {
		t.Fatal(err)
	}
	want := []Example{
		{Prompt: "What is 2+2?", Response: "2+2=4\nThe answer is: 4"},
		{Prompt: "Say \"ok\" é", Response: "ok"},
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("ReadJSONL = %+v, want %+v", got, want)
	}
}

func TestReadJSONLErrors(t *testing.T) {
	tests := []struct {
		name, content string
		line          int
		contains      string
	}{
		{"invalid json", "{\"question\":\"q\",\"answer\":\"a\"}\n{\"question\": \"q\"\n", 2, "invalid JSON"},
		{"missing field", "\n\n{\"question\":\"q\"}\n", 3, `missing field "answer"`},
		{"wrong type", "{\"question\":\"q\",\"answer\":72}\n", 1, `field "answer" is a number`},
		{"null field", "{\"question\":null,\"answer\":\"a\"}\n", 1, `field "question" is null`},
		{"empty field", "{\"question\":\"\",\"answer\":\"a\"}\n", 1, `field "question" is empty`},
		{"array line", "[1,2]\n", 1, "want an object"},
		{"null line", "null\n", 1, "want an object"},
		{"trailing garbage", "{\"question\":\"q\",\"answer\":\"a\"} x\n", 1, "invalid JSON"},
		{"empty file", "\n\n", 0, "empty file"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			path := writeFile(t, t.TempDir(), "g.jsonl", tc.content)
			_, err := ReadGSM8K(path)
			var ie *InputError
			if !errors.As(err, &ie) {
				t.Fatalf("error = %v, want an InputError", err)
			}
			if ie.File != path || ie.Line != tc.line || !strings.Contains(ie.Msg, tc.contains) {
				t.Errorf("error = %v, want %s:%d containing %q", err, path, tc.line, tc.contains)
			}
		})
	}
	if _, err := ReadGSM8K(filepath.Join(t.TempDir(), "missing.jsonl")); err == nil {
		t.Error("no error for a missing file")
	}
	if _, err := ReadJSONL("x", "query", "query"); err == nil {
		t.Error("no error for identical field names")
	}
}

// FuzzReadGSM8K fuzzes the GSM8K JSONL reader: no panics, errors name the file,
// and whatever it accepts survives a round trip through encoding/json.
func FuzzReadGSM8K(f *testing.F) {
	for _, seed := range []string{
		`{"question": "q", "answer": "a\n#### 1"}` + "\n",
		`{"question": "q", "answer": 1}`,
		"\xef\xbb\xbf{\"question\": \"\\u00e9\", \"answer\": \"x\"}\r\n\r\n",
		`[]`, `null`, `{"question": "q"`, "{\"question\":\"a\",\"answer\":\"b\",\"answer\":\"c\"}\n",
	} {
		f.Add([]byte(seed))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		pairs, err := parseJSONLPairs("fuzz.jsonl", bytes.NewReader(data), "question", "answer")
		if err != nil {
			var ie *InputError
			if !errors.As(err, &ie) || ie.File != "fuzz.jsonl" {
				t.Fatalf("error %v does not name the file", err)
			}
			return
		}
		var buf bytes.Buffer
		for _, p := range pairs {
			if p[0] == "" || p[1] == "" {
				t.Fatalf("accepted an empty field: %q", p)
			}
			line, err := json.Marshal(map[string]string{"question": p[0], "answer": p[1]})
			if err != nil {
				t.Fatal(err)
			}
			buf.Write(line)
			buf.WriteByte('\n')
		}
		again, err := parseJSONLPairs("again.jsonl", &buf, "question", "answer")
		if err != nil {
			t.Fatalf("re-reading accepted pairs %q: %v", pairs, err)
		}
		if !reflect.DeepEqual(again, pairs) {
			t.Fatalf("round trip: got %q, want %q", again, pairs)
		}
	})
}

func TestApplyPromptTemplate(t *testing.T) {
	in := []Example{{Prompt: "What is 2+2?", Response: "4\nThe answer is: 4"}}
	got, err := ApplyPromptTemplate(in, "Question: {prompt}\nAnswer: ")
	if err != nil {
		t.Fatal(err)
	}
	want := Example{Prompt: "Question: What is 2+2?\nAnswer: ", Response: "4\nThe answer is: 4"}
	if len(got) != 1 || got[0] != want || in[0].Prompt != "What is 2+2?" {
		t.Errorf("got %+v, want %+v (input unchanged)", got, want)
	}
	for _, bad := range []string{"no placeholder", "{prompt} twice {prompt}"} {
		if _, err := ApplyPromptTemplate(in, bad); err == nil {
			t.Errorf("template %q accepted", bad)
		}
	}
}
