package datasets

import (
	"bytes"
	"encoding/json"
	"strings"
	"testing"
)

// TestMetaMathPrompts pins the training and evaluation templates byte for
// byte (MetaMath's train_math.py and eval_gsm8k.py).
func TestMetaMathPrompts(t *testing.T) {
	q := "Natalia sold clips to 48 of her friends in April. How many?"
	train := "Below is an instruction that describes a task. Write a response that appropriately completes the request.\n\n" +
		"### Instruction:\nNatalia sold clips to 48 of her friends in April. How many?\n\n### Response:"
	if got := MetaMathPrompt(q); got != train {
		t.Errorf("MetaMathPrompt:\n%q\nwant\n%q", got, train)
	}
	if got, want := MetaMathEvalPrompt(q), train+" Let's think step by step."; got != want {
		t.Errorf("MetaMathEvalPrompt:\n%q\nwant\n%q", got, want)
	}
}

// TestExtractMetaMath checks MetaMath's extract_answer_number on the cases
// its code distinguishes; the wants are what the Python function returns.
func TestExtractMetaMath(t *testing.T) {
	for _, tc := range []struct {
		completion string
		want       float64
		ok         bool
	}{
		{"She sold 48/2 = 24 clips.\nThe answer is: 72", 72, true},
		{"The answer is: 1,234.", 1234, true},
		{"The answer is: 1,234,567", 1234, true}, // one separator only: "1,234"
		{"The answer is: -5", -5, true},
		{"The answer is: +7 apples", 7, true},
		{"The answer is: 2.5", 2, true},   // Python's round: half to even
		{"The answer is: 3.5", 4, true},   // half to even
		{"The answer is: 0.4", 0, true},   // and -0.4 is 0 too
		{"The answer is: -0.4", 0, true},  //
		{"The answer is: .75", 1, true},   // \d* may be empty
		{"The answer is: 3/4", 1, true},   // a fraction: round(0.75)
		{"The answer is: 7/0", 7, true},   // denominator "0": the numerator
		{"The answer is: 7/00", 0, false}, // Fraction raises; no answer
		{"The answer is: $18 per day", 18, true},
		{"The answer is: 5\nThe answer is: 6", 6, true}, // the last marker counts
		{"The answer is:  \n 12", 12, true},             // text after the marker is stripped
		{"The answer is 12", 0, false},                  // no "The answer is: "
		{"no marker, 42 at the end", 0, false},
		{"The answer is: twelve", 0, false},
		{"The answer is: " + strings.Repeat("9", 400), 0, false}, // float('9'*400) is inf
	} {
		got, ok := ExtractMetaMath(tc.completion)
		if ok != tc.ok || (ok && got != tc.want) {
			t.Errorf("ExtractMetaMath(%q) = %v, %v; want %v, %v", tc.completion, got, ok, tc.want, tc.ok)
		}
	}
	if s := FormatMetaMathAnswer(ExtractMetaMath("The answer is: -0.4")); s != "0" {
		t.Errorf("formatted -0.4 as %q, want 0", s)
	}
	if s := FormatMetaMathAnswer(ExtractMetaMath("nothing")); s != GSM8KInvalid {
		t.Errorf("formatted no answer as %q", s)
	}
}

func TestGSM8KGoldInt(t *testing.T) {
	for answer, want := range map[string]int64{
		"3+4=7\n#### 7": 7,
		"#### 1,234":    1234,
		"loss\n#### -3": -3,
	} {
		if got, err := GSM8KGoldInt(answer); err != nil || got != want {
			t.Errorf("GSM8KGoldInt(%q) = %d, %v; want %d", answer, got, err, want)
		}
	}
	for _, bad := range []string{"no marker 7", "#### 7.5", "#### seven", "a #### 5 and #### 6" /* split('#### ')[1] is "5 and " */} {
		if _, err := GSM8KGoldInt(bad); err == nil {
			t.Errorf("GSM8KGoldInt(%q) accepted", bad)
		}
	}
}

// TestMetaMathStops checks that generation is cut at the first of the
// stop strings, colon-less forms included.
func TestMetaMathStops(t *testing.T) {
	for text, want := range map[string]string{
		" 2+3=5. The answer is: 5\n\n### Instruction:\nNext": " 2+3=5. The answer is: 5\n\n### ",
		" The answer is: 5 Response from":                    " The answer is: 5 ",
		" 4. USER: hi ASSISTANT: yo":                         " 4. ",
		" Question 2: what":                                  " ",
		" The answer is: 8":                                  " The answer is: 8",
	} {
		if got := TruncateAtStops(text, MetaMathStops); got != want {
			t.Errorf("TruncateAtStops(%q) = %q, want %q", text, got, want)
		}
	}
}

// TestMetaMathSampleRecord checks the sample log line of the metamath
// template: only its extraction, scored against the gold integer.
func TestMetaMathSampleRecord(t *testing.T) {
	doc := GSM8KDoc{Question: "q", Answer: "work\n#### 1,234"}
	rec := NewGSM8KMetaMathSample(3, MetaMathEvalPrompt("q"), doc, 1234, " so 1234.0. The answer is: 1,234.")
	var buf bytes.Buffer
	if err := NewSampleWriter(&buf).Write(rec); err != nil {
		t.Fatal(err)
	}
	var got map[string]any
	if err := json.Unmarshal(buf.Bytes(), &got); err != nil {
		t.Fatal(err)
	}
	resp := got["response"].(map[string]any)
	if resp["metamath"] != "1234" || resp["strict-match"] != nil || got["correct"].(map[string]any)["metamath"] != true ||
		got["prompt"] != MetaMathEvalPrompt("q") {
		t.Errorf("record %s", buf.String())
	}
	if rec := NewGSM8KMetaMathSample(0, "", doc, 1234, " The answer is: 1235"); rec.Correct[GSM8KMetaMath] {
		t.Error("1235 scored as 1234")
	}
}
