package datasets

import (
	"encoding/json"
	"fmt"
	"io"
	"math"
)

// SampleRecord is one line of a -log-samples JSONL file (the counterpart of
// lm-eval's --log_samples): what was asked, what the model answered and
// whether it was right.
type SampleRecord struct {
	// Task is "gsm8k" or "mmlu_<subject>" (lm-eval's task names).
	Task string `json:"task"`
	// DocID is the document's index in the evaluated split of the task.
	DocID int `json:"doc_id"`
	// Shots is the number of few-shot examples in the prompt, and
	// TruncatedShots how many were dropped to fit the context.
	Shots          int `json:"n_shot"`
	TruncatedShots int `json:"truncated_shots,omitempty"`
	// Prompt is the exact text fed to the model.
	Prompt string `json:"prompt"`
	// Target is the gold answer (GSM8K: the full answer field; MMLU: the letter).
	Target string `json:"target"`
	// Response is a *GSM8KResponse or an *MMLUResponse.
	Response any `json:"response"`
	// Correct maps each metric/filter name to the outcome
	// (GSM8K: strict-match and flexible-extract; MMLU: acc).
	Correct map[string]bool `json:"correct"`
}

// GSM8KResponse is a GSM8K model response: the generated text (cut at the
// stop sequences) and the answers extracted from it: by lm-eval's two
// filters (the lm-eval template) or by MetaMath's extraction (the metamath
// template).
type GSM8KResponse struct {
	Text            string `json:"text"`
	StrictMatch     string `json:"strict-match,omitempty"`
	FlexibleExtract string `json:"flexible-extract,omitempty"`
	MetaMath        string `json:"metamath,omitempty"`
}

// MMLUResponse is an MMLU model response: the log-likelihoods of the
// continuations " A".." D" and the predicted letter.
type MMLUResponse struct {
	LogLikelihoods [4]float64 `json:"loglikelihoods"`
	Prediction     string     `json:"prediction"`
}

// NewGSM8KSample scores a generated response (already cut at the stop
// sequences) and returns its sample record.
func NewGSM8KSample(docID, shots, truncatedShots int, prompt string, doc GSM8KDoc, generated string) SampleRecord {
	j := JudgeGSM8K(generated, doc.Answer)
	return SampleRecord{
		Task: "gsm8k", DocID: docID, Shots: shots, TruncatedShots: truncatedShots,
		Prompt: prompt, Target: doc.Answer,
		Response: &GSM8KResponse{Text: generated, StrictMatch: j.Strict, FlexibleExtract: j.Flexible},
		Correct:  map[string]bool{GSM8KStrictMatch: j.StrictCorrect, GSM8KFlexibleExtract: j.FlexibleCorrect},
	}
}

// NewMMLUSample scores the four continuation log-likelihoods of an MMLU
// question and returns its sample record (DocID is doc.Index).
func NewMMLUSample(shots, truncatedShots int, prompt string, doc MMLUDoc, logLikelihoods [4]float64) SampleRecord {
	pred := MMLUPredict(logLikelihoods)
	return SampleRecord{
		Task: "mmlu_" + doc.Subject, DocID: doc.Index, Shots: shots, TruncatedShots: truncatedShots,
		Prompt: prompt, Target: MMLULetter(doc.Answer),
		Response: &MMLUResponse{LogLikelihoods: logLikelihoods, Prediction: MMLULetter(pred)},
		Correct:  map[string]bool{"acc": pred == doc.Answer},
	}
}

// SampleWriter writes sample records as JSON Lines, without HTML escaping so
// prompts stay readable ("<", ">" and "&" are written as is).
type SampleWriter struct {
	enc *json.Encoder
}

// NewSampleWriter returns a writer of records to w.
func NewSampleWriter(w io.Writer) *SampleWriter {
	enc := json.NewEncoder(w)
	enc.SetEscapeHTML(false)
	return &SampleWriter{enc: enc}
}

// Write appends one record as one line. Non-finite log-likelihoods cannot be
// represented in JSON and are an error.
func (sw *SampleWriter) Write(r SampleRecord) error {
	if m, ok := r.Response.(*MMLUResponse); ok {
		for i, v := range m.LogLikelihoods {
			if math.IsNaN(v) || math.IsInf(v, 0) {
				return fmt.Errorf("datasets: sample %s/%d: log-likelihood of %q is %v", r.Task, r.DocID, MMLUContinuations[i], v)
			}
		}
	}
	if err := sw.enc.Encode(r); err != nil {
		return fmt.Errorf("datasets: writing sample %s/%d: %w", r.Task, r.DocID, err)
	}
	return nil
}
