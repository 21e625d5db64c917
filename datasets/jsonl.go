package datasets

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
)

// Example is one supervised training example: the model reads Prompt and
// learns to continue it with Response.
type Example struct {
	Prompt, Response string
}

// GSM8KDoc is one GSM8K problem. Answer is the worked solution whose last
// line is "#### {number}".
type GSM8KDoc struct {
	Question, Answer string
}

// ReadGSM8K reads a GSM8K JSONL file (one {"question": ..., "answer": ...}
// object per line, as in openai/grade-school-math).
func ReadGSM8K(path string) ([]GSM8KDoc, error) {
	pairs, err := readJSONLPairs(path, "question", "answer")
	if err != nil {
		return nil, err
	}
	docs := make([]GSM8KDoc, len(pairs))
	for i, p := range pairs {
		docs[i] = GSM8KDoc{Question: p[0], Answer: p[1]}
	}
	return docs, nil
}

// ReadJSONL reads prompt/response examples from a JSONL file whose objects
// hold the two named string fields (MetaMathQA: "query" and "response");
// other fields are ignored.
func ReadJSONL(path, promptField, responseField string) ([]Example, error) {
	if promptField == "" || responseField == "" || promptField == responseField {
		return nil, fmt.Errorf("datasets: JSONL prompt and response fields must be two different non-empty names (got %q and %q)", promptField, responseField)
	}
	pairs, err := readJSONLPairs(path, promptField, responseField)
	if err != nil {
		return nil, err
	}
	ex := make([]Example, len(pairs))
	for i, p := range pairs {
		ex[i] = Example{Prompt: p[0], Response: p[1]}
	}
	return ex, nil
}

// ApplyPromptTemplate rewrites each example's prompt through a template that
// contains the placeholder "{prompt}" exactly once, e.g.
// "Question: {prompt}\nAnswer: " to train MetaMathQA queries in the GSM8K
// evaluation format. Responses are unchanged.
func ApplyPromptTemplate(examples []Example, template string) ([]Example, error) {
	const placeholder = "{prompt}"
	if n := strings.Count(template, placeholder); n != 1 {
		return nil, fmt.Errorf("datasets: prompt template %q must contain %s exactly once (found %d)", template, placeholder, n)
	}
	before, after, _ := strings.Cut(template, placeholder)
	out := make([]Example, len(examples))
	for i, ex := range examples {
		out[i] = Example{Prompt: before + ex.Prompt + after, Response: ex.Response}
	}
	return out, nil
}

// readJSONLPairs opens path and parses it with parseJSONLPairs.
func readJSONLPairs(path, first, second string) ([][2]string, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("datasets: %w", err)
	}
	defer f.Close()
	return parseJSONLPairs(path, f, first, second)
}

// parseJSONLPairs reads one JSON object per line from r and returns the two
// named string fields of each. Blank lines are skipped; CRLF line ends and a
// leading UTF-8 byte order mark are accepted. Each field must be present, a
// string and not empty. Errors name file and line.
func parseJSONLPairs(file string, r io.Reader, first, second string) ([][2]string, error) {
	br := bufio.NewReaderSize(r, 1<<16)
	var pairs [][2]string
	for line := 1; ; line++ {
		raw, readErr := br.ReadBytes('\n')
		if readErr != nil && readErr != io.EOF {
			return nil, inputErrorf(file, line, "read: %v", readErr)
		}
		if line == 1 {
			raw = bytes.TrimPrefix(raw, []byte("\xef\xbb\xbf"))
		}
		text := bytes.TrimSpace(raw)
		if len(text) > 0 {
			pair, err := decodeJSONPair(text, first, second)
			if err != nil {
				return nil, inputErrorf(file, line, "%v", err)
			}
			pairs = append(pairs, pair)
		}
		if readErr == io.EOF {
			break
		}
	}
	if len(pairs) == 0 {
		return nil, inputErrorf(file, 0, "no JSON objects (empty file)")
	}
	return pairs, nil
}

// decodeJSONPair decodes one JSON object and extracts two string fields.
func decodeJSONPair(text []byte, first, second string) ([2]string, error) {
	var obj map[string]json.RawMessage
	if err := json.Unmarshal(text, &obj); err != nil {
		var typeErr *json.UnmarshalTypeError
		if errors.As(err, &typeErr) {
			return [2]string{}, fmt.Errorf("line is a JSON %s, want an object", typeErr.Value)
		}
		return [2]string{}, fmt.Errorf("invalid JSON: %v", err)
	}
	if obj == nil {
		return [2]string{}, errors.New("line is JSON null, want an object")
	}
	var out [2]string
	for i, name := range [2]string{first, second} {
		var err error
		if out[i], err = stringField(name, obj[name], true); err != nil {
			return out, err
		}
	}
	return out, nil
}

// jsonKind names the JSON type of a raw value for error messages.
func jsonKind(v json.RawMessage) string {
	t := bytes.TrimSpace(v)
	if len(t) == 0 {
		return "empty"
	}
	switch t[0] {
	case '{':
		return "an object"
	case '[':
		return "an array"
	case '"':
		return "a string"
	case 't', 'f':
		return "a boolean"
	case 'n':
		return "null"
	default:
		return "a number"
	}
}
