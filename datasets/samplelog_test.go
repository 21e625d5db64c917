package datasets

import (
	"bytes"
	"math"
	"testing"
)

func TestSampleWriterGSM8K(t *testing.T) {
	var buf bytes.Buffer
	w := NewSampleWriter(&buf)
	prompt := GSM8KPrompt(nil, apples)
	rec := NewGSM8KSample(3, 0, 0, prompt, apples, " 3+4=<<3+4=7>>7 apples & more\n#### 7")
	if err := w.Write(rec); err != nil {
		t.Fatal(err)
	}
	want := `{"task":"gsm8k","doc_id":3,"n_shot":0,` +
		`"prompt":"Question: Tom has 3 apples and buys 4 more. How many apples does he have?\nAnswer:",` +
		`"target":"3+4=<<3+4=7>>7\n#### 7",` +
		`"response":{"text":" 3+4=<<3+4=7>>7 apples & more\n#### 7","strict-match":"7","flexible-extract":"7"},` +
		`"correct":{"flexible-extract":true,"strict-match":true}}` + "\n"
	if got := buf.String(); got != want {
		t.Errorf("record =\n%s\nwant\n%s", got, want)
	}
}

func TestSampleWriterMMLU(t *testing.T) {
	var buf bytes.Buffer
	w := NewSampleWriter(&buf)
	d := MMLUDoc{Subject: "virology", Index: 12, Question: "Q?", Choices: [4]string{"a", "b", "c", "d"}, Answer: 2}
	rec := NewMMLUSample(5, 2, "P", d, [4]float64{-1.5, -0.25, -2, -3})
	if err := w.Write(rec); err != nil {
		t.Fatal(err)
	}
	want := `{"task":"mmlu_virology","doc_id":12,"n_shot":5,"truncated_shots":2,"prompt":"P","target":"C",` +
		`"response":{"loglikelihoods":[-1.5,-0.25,-2,-3],"prediction":"B"},"correct":{"acc":false}}` + "\n"
	if got := buf.String(); got != want {
		t.Errorf("record =\n%s\nwant\n%s", got, want)
	}
	rec = NewMMLUSample(0, 0, "P", d, [4]float64{math.Inf(-1), 0, 0, 0})
	if err := w.Write(rec); err == nil {
		t.Error("non-finite log-likelihood accepted")
	}
}
