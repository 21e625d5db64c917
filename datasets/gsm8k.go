package datasets

import (
	"regexp"
	"strings"
)

// GSM8KStops are the stop sequences of lm-eval's gsm8k task (v3); the caller
// adds the tokenizer's EOS. Generation also stops after 256 new tokens.
var GSM8KStops = []string{"Question:", "</s>", "<|im_end|>"}

// GSM8KMaxNewTokens is lm-eval's default generation budget (max_gen_toks).
const GSM8KMaxNewTokens = 256

// GSM8KInvalid is what extraction returns when the regex finds nothing
// (lm-eval's RegexFilter fallback).
const GSM8KInvalid = "[invalid]"

// GSM8K filter names as lm-eval reports them.
const (
	GSM8KStrictMatch     = "strict-match"
	GSM8KFlexibleExtract = "flexible-extract"
)

var (
	// gsm8kStrictRe is the strict-match filter: the number after "#### ".
	gsm8kStrictRe = regexp.MustCompile(`#### (\-?[0-9\.\,]+)`)
	// gsm8kFlexibleRe is the flexible-extract filter: any number-like run.
	gsm8kFlexibleRe = regexp.MustCompile(`(-?[$0-9.,]{2,})|(-?[0-9]+)`)
	// gsm8kIgnoreRes are the exact_match regexes_to_ignore, applied in order,
	// except the final `\.$`, which gsm8kTrimFinalDot implements.
	gsm8kIgnoreRes = []*regexp.Regexp{
		regexp.MustCompile(`,`),
		regexp.MustCompile(`\$`),
		regexp.MustCompile(`(?s).*#### `),
	}
)

// gsm8kShot renders one problem with its answer as a few-shot example.
func gsm8kShot(d GSM8KDoc) string { return "Question: " + d.Question + "\nAnswer: " + d.Answer }

// gsm8kQuestion renders the problem to answer: "Question: {q}\nAnswer:".
func gsm8kQuestion(d GSM8KDoc) string { return "Question: " + d.Question + "\nAnswer:" }

// GSM8KPrompt renders lm-eval's gsm8k prompt: each shot as
// "Question: {q}\nAnswer: {full answer}" followed by "\n\n", then
// "Question: {q}\nAnswer:" for d. The model continues after "Answer:"
// (its first token usually starts with a space).
func GSM8KPrompt(shots []GSM8KDoc, d GSM8KDoc) string {
	var b strings.Builder
	for _, s := range shots {
		b.WriteString(gsm8kShot(s))
		b.WriteString("\n\n")
	}
	b.WriteString(gsm8kQuestion(d))
	return b.String()
}

// GSM8KTrainExample turns a problem into a training example with prompt
// "Question: {q}\nAnswer: " and the full worked answer as response.
func GSM8KTrainExample(d GSM8KDoc) Example {
	return Example{Prompt: "Question: " + d.Question + "\nAnswer: ", Response: d.Answer}
}

// TruncateAtStops cuts generated text before the first occurrence of each
// stop sequence in turn, as lm-eval's HF model does after generation
// (text.split(stop)[0] for every stop); empty stops are ignored.
func TruncateAtStops(text string, stops []string) string {
	for _, s := range stops {
		if s == "" {
			continue
		}
		if i := strings.Index(text, s); i >= 0 {
			text = text[:i]
		}
	}
	return text
}

// extractMatch is lm-eval's RegexFilter: take the match number pick (0 = first,
// -1 = last) of re in text; with several groups take the first non-empty one;
// strip surrounding whitespace; GSM8KInvalid when there is no match.
func extractMatch(re *regexp.Regexp, text string, last bool) string {
	var m []string
	if last {
		all := re.FindAllStringSubmatch(text, -1)
		if len(all) == 0 {
			return GSM8KInvalid
		}
		m = all[len(all)-1]
	} else {
		m = re.FindStringSubmatch(text)
		if m == nil {
			return GSM8KInvalid
		}
	}
	for _, g := range m[1:] {
		if g != "" {
			return pyStrip(g)
		}
	}
	return GSM8KInvalid
}

// ExtractGSM8KStrict is the strict-match answer: the first match of
// `#### (\-?[0-9\.\,]+)`, or GSM8KInvalid.
func ExtractGSM8KStrict(response string) string {
	return extractMatch(gsm8kStrictRe, response, false)
}

// ExtractGSM8KFlexible is the flexible-extract answer: the last match of
// `(-?[$0-9.,]{2,})|(-?[0-9]+)` (whichever group matched), or GSM8KInvalid.
func ExtractGSM8KFlexible(response string) string {
	return extractMatch(gsm8kFlexibleRe, response, true)
}

// NormalizeGSM8K applies lm-eval's gsm8k exact_match normalisation: remove
// ",", "$", everything up to and including the last "#### ", a final "."
// (Python's `\.$`, which also matches before one trailing newline), then
// lower-case. It turns a gold answer into its number.
func NormalizeGSM8K(s string) string {
	for _, re := range gsm8kIgnoreRes {
		s = re.ReplaceAllString(s, "")
	}
	s = gsm8kTrimFinalDot(s)
	return strings.ToLower(s)
}

// gsm8kTrimFinalDot is re.sub(r"\.$", "", s): Python's `$` matches at the end
// and just before a final "\n", and there can be only one such dot.
func gsm8kTrimFinalDot(s string) string {
	if strings.HasSuffix(s, ".") {
		return s[:len(s)-1]
	}
	if strings.HasSuffix(s, ".\n") {
		return s[:len(s)-2] + "\n"
	}
	return s
}

// GSM8KExactMatch reports whether an extracted answer equals the gold answer
// field after NormalizeGSM8K on both (lm-eval: ignore_case, regexes_to_ignore).
func GSM8KExactMatch(extracted, goldAnswer string) bool {
	return NormalizeGSM8K(extracted) == NormalizeGSM8K(goldAnswer)
}

// GSM8KJudgement is the scoring of one generated answer under both filters.
type GSM8KJudgement struct {
	Strict, Flexible               string // extracted answers
	StrictCorrect, FlexibleCorrect bool
}

// JudgeGSM8K extracts both answers from a generated response (already cut at
// the stop sequences) and scores them against the gold answer field.
func JudgeGSM8K(response, goldAnswer string) GSM8KJudgement {
	j := GSM8KJudgement{Strict: ExtractGSM8KStrict(response), Flexible: ExtractGSM8KFlexible(response)}
	j.StrictCorrect = GSM8KExactMatch(j.Strict, goldAnswer)
	j.FlexibleCorrect = GSM8KExactMatch(j.Flexible, goldAnswer)
	return j
}
