package datasets

import (
	"fmt"
	"math"
	"math/big"
	"regexp"
	"strconv"
	"strings"
)

// GSM8KMetaMath is the name of the MetaMath answer extraction, the filter
// part of its metric name ("exact_match,metamath").
const GSM8KMetaMath = "metamath"

// GSM8KMetaMathMaxNewTokens is the generation budget of MetaMath's
// eval_gsm8k.py (vLLM max_tokens).
const GSM8KMetaMathMaxNewTokens = 512

// MetaMathStops are the stop strings of MetaMath's eval_gsm8k.py, with and
// without their colons; the caller adds the tokenizer's EOS.
var MetaMathStops = []string{
	"Question:", "Question", "USER:", "USER", "ASSISTANT:", "ASSISTANT",
	"Instruction:", "Instruction", "Response:", "Response",
}

// metaMathAnswerMarker precedes the final answer in MetaMathQA responses.
const metaMathAnswerMarker = "The answer is: "

// metaMathNumberRe is the number MetaMath's extraction takes: an optional
// sign, digits, at most one '.', ',' or '/', digits.
var metaMathNumberRe = regexp.MustCompile(`[\-+]?\d*[\.,/]?\d+`)

// MetaMathEvalPrompt is the zero-shot GSM8K prompt of MetaMath's
// eval_gsm8k.py: the training template with " Let's think step by step."
// after "### Response:".
func MetaMathEvalPrompt(question string) string {
	return MetaMathPrompt(question) + " Let's think step by step."
}

// ExtractMetaMath is MetaMath's extract_answer_number: the text after the
// last "The answer is: ", stripped; the first match of
// `[\-+]?\d*[\.,/]?\d+` in it; with a '/', the fraction's value (the
// numerator alone when the denominator is "0"); else the number with ','
// removed; rounded half to even, as Python's round. ok is false when there
// is no marker or no number, or the value is infinite or undefined.
func ExtractMetaMath(completion string) (value float64, ok bool) {
	i := strings.LastIndex(completion, metaMathAnswerMarker)
	if i < 0 {
		return 0, false
	}
	m := metaMathNumberRe.FindString(pyStrip(completion[i+len(metaMathAnswerMarker):]))
	if m == "" {
		return 0, false
	}
	if num, den, isFrac := strings.Cut(m, "/"); isFrac {
		if num == "" {
			return 0, false // Python's is_number("") is false
		}
		if den == "0" {
			return roundFinite(num)
		}
		r, valid := new(big.Rat).SetString(num + "/" + den)
		if !valid {
			return 0, false // a zero denominator such as "00"
		}
		f, _ := r.Float64()
		return roundEven(f), true
	}
	return roundFinite(strings.ReplaceAll(m, ",", ""))
}

// roundFinite parses s as Python's float does for these digit strings and
// rounds it half to even; an infinite value is no answer.
func roundFinite(s string) (float64, bool) {
	f, err := strconv.ParseFloat(s, 64)
	if err != nil && !isRangeError(err) {
		return 0, false
	}
	if math.IsInf(f, 0) {
		return 0, false
	}
	return roundEven(f), true
}

// roundEven is Python's round(x) to an integer: half to even, and -0.4
// gives 0, not -0.
func roundEven(x float64) float64 {
	if r := math.RoundToEven(x); r != 0 {
		return r
	}
	return 0
}

func isRangeError(err error) bool {
	ne, ok := err.(*strconv.NumError)
	return ok && ne.Err == strconv.ErrRange
}

// GSM8KGoldInt is the gold answer as MetaMath reads it: the text after the
// first "#### " of the answer field, ',' removed, as an integer.
func GSM8KGoldInt(answer string) (int64, error) {
	parts := strings.Split(answer, "#### ")
	if len(parts) < 2 {
		return 0, fmt.Errorf("answer has no \"#### \" line")
	}
	text := pyStrip(strings.ReplaceAll(parts[1], ",", ""))
	n, err := strconv.ParseInt(text, 10, 64)
	if err != nil {
		return 0, fmt.Errorf("answer %q after \"#### \" is not an integer", text)
	}
	return n, nil
}

// FormatMetaMathAnswer renders an extracted answer for the sample log:
// the integer, or GSM8KInvalid.
func FormatMetaMathAnswer(value float64, ok bool) string {
	if !ok {
		return GSM8KInvalid
	}
	return strconv.FormatFloat(value, 'f', -1, 64)
}

// NewGSM8KMetaMathSample scores a generated response (already cut at
// MetaMathStops) with MetaMath's extraction against the gold integer and
// returns its sample record.
func NewGSM8KMetaMathSample(docID int, prompt string, doc GSM8KDoc, gold int64, generated string) SampleRecord {
	v, ok := ExtractMetaMath(generated)
	return SampleRecord{
		Task: "gsm8k", DocID: docID, Prompt: prompt, Target: doc.Answer,
		Response: &GSM8KResponse{Text: generated, MetaMath: FormatMetaMathAnswer(v, ok)},
		Correct:  map[string]bool{GSM8KMetaMath: ok && v == float64(gold)},
	}
}
