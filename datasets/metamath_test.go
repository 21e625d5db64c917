package datasets

import (
	"errors"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"testing/iotest"
)

const (
	metaMathArray = "testdata/metamathqa/MetaMathQA-tiny.json"
	metaMathLines = "testdata/metamathqa/MetaMathQA-tiny.jsonl"
)

// TestMetaMathTrainExampleTemplate pins the rendered training text byte for
// byte: the template ends in "### Response:" and the response follows with
// no separator.
func TestMetaMathTrainExampleTemplate(t *testing.T) {
	ex := MetaMathTrainExample(MetaMathRecord{Query: "What is 2+3?", Response: "2+3=5.\nThe answer is: 5", Type: "GSM_AnsAug"})
	want := "Below is an instruction that describes a task. Write a response that appropriately completes the request.\n\n" +
		"### Instruction:\nWhat is 2+3?\n\n### Response:2+3=5.\nThe answer is: 5"
	if got := ex.Prompt + ex.Response; got != want {
		t.Errorf("prompt+response =\n%q\nwant\n%q", got, want)
	}
	if !strings.HasSuffix(ex.Prompt, "### Response:") || ex.Response != "2+3=5.\nThe answer is: 5" {
		t.Errorf("boundary: prompt %q, response %q", ex.Prompt, ex.Response)
	}
}

// TestReadMetaMathQAArrayAndLines reads the same records as a JSON array
// and as JSON Lines, and checks decoded fields byte for byte (escapes, LaTeX
// backslashes, non-ASCII).
func TestReadMetaMathQAArrayAndLines(t *testing.T) {
	fromArray, err := ReadMetaMathQA(metaMathArray, MetaMathSelection{Seed: 7})
	if err != nil {
		t.Fatal(err)
	}
	fromLines, err := ReadMetaMathQA(metaMathLines, MetaMathSelection{Seed: 7})
	if err != nil {
		t.Fatal(err)
	}
	if len(fromArray) != 12 || !slices.Equal(fromArray, fromLines) {
		t.Fatalf("array gave %d records, lines %d; equal: %v", len(fromArray), len(fromLines), slices.Equal(fromArray, fromLines))
	}
	want := map[string]MetaMathRecord{
		"mega": {Query: "A \"mega\" pack has 3 boxes of 8 crayons. Mia buys 2 packs. How many crayons does she get?",
			Response: "One pack holds 3 * 8 = 24 crayons.\nTwo packs hold 2 * 24 = 48 crayons.\n#### 48\nThe answer is: 48", Type: "GSM_AnsAug"},
		"café": {Query: "Compute $3 \\cdot 4 - 5$ (the café's price in euros, €).",
			Response: "$3 \\cdot 4 - 5 = 12 - 5 = \\boxed{7}$.\nThe answer is: 7", Type: "MATH_AnsAug"},
	}
	for key, w := range want {
		i := slices.IndexFunc(fromArray, func(r MetaMathRecord) bool { return strings.Contains(r.Query, key) })
		if i < 0 || fromArray[i] != w {
			t.Errorf("record with %q: got %+v, want %+v", key, fromArray, w)
		}
	}
	ex := MetaMathTrainExample(want["café"])
	if wantPrompt := "Below is an instruction that describes a task. Write a response that appropriately completes the request.\n\n" +
		"### Instruction:\nCompute $3 \\cdot 4 - 5$ (the café's price in euros, €).\n\n### Response:"; ex.Prompt != wantPrompt {
		t.Errorf("prompt %q, want %q", ex.Prompt, wantPrompt)
	}
}

// TestReadMetaMathQAShuffle: the order is a seeded permutation (pinned for
// seed 42, so that a run's examples do not change between versions), Max
// keeps a prefix of the full order, and another seed gives another order.
func TestReadMetaMathQAShuffle(t *testing.T) {
	fileOrder, err := ReadMetaMathQA(metaMathLines, MetaMathSelection{Max: 0, Seed: 42})
	if err != nil {
		t.Fatal(err)
	}
	// The file order, to name records by their position.
	var inFile []MetaMathRecord
	data, _ := os.ReadFile(metaMathLines)
	if err := scanMetaMathQA(metaMathLines, strings.NewReader(string(data)), func(i int, r MetaMathRecord) { inFile = append(inFile, r) }); err != nil {
		t.Fatal(err)
	}
	positions := func(recs []MetaMathRecord) []int {
		p := make([]int, len(recs))
		for i, r := range recs {
			p[i] = slices.Index(inFile, r)
		}
		return p
	}
	got := positions(fileOrder)
	if sorted := slices.Sorted(slices.Values(got)); !slices.Equal(sorted, []int{0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11}) {
		t.Fatalf("order %v is not a permutation of the 12 records", got)
	}
	if pinned := []int{7, 4, 0, 2, 11, 10, 6, 5, 1, 8, 3, 9}; !slices.Equal(got, pinned) {
		t.Errorf("seed 42 order %v, want %v", got, pinned)
	}
	for _, max := range []int{1, 5, 12, 100} {
		sub, err := ReadMetaMathQA(metaMathArray, MetaMathSelection{Max: max, Seed: 42})
		if err != nil {
			t.Fatal(err)
		}
		if n := min(max, 12); !slices.Equal(sub, fileOrder[:n]) {
			t.Errorf("Max %d: %v, want the first %d of %v", max, positions(sub), n, got)
		}
	}
	again, _ := ReadMetaMathQA(metaMathArray, MetaMathSelection{Seed: 42})
	other, _ := ReadMetaMathQA(metaMathArray, MetaMathSelection{Seed: 43})
	if !slices.Equal(again, fileOrder) || slices.Equal(other, fileOrder) {
		t.Errorf("seed 42 twice: %v and %v; seed 43: %v", got, positions(again), positions(other))
	}
}

// TestReadMetaMathQATypes: a filter keeps its types in the unfiltered
// order; unknown names are allowed; a filter that keeps nothing is an error
// listing the file's types.
func TestReadMetaMathQATypes(t *testing.T) {
	all, _ := ReadMetaMathQA(metaMathArray, MetaMathSelection{Seed: 3})
	types := []string{"GSM_SV", "MATH_FOBAR", "NO_SUCH_TYPE"}
	got, err := ReadMetaMathQA(metaMathArray, MetaMathSelection{Types: types, Seed: 3})
	if err != nil {
		t.Fatal(err)
	}
	var want []MetaMathRecord
	for _, r := range all {
		if slices.Contains(types, r.Type) {
			want = append(want, r)
		}
	}
	if len(want) != 3 || !slices.Equal(got, want) {
		t.Errorf("filtered %+v, want %+v", got, want)
	}
	if two, _ := ReadMetaMathQA(metaMathArray, MetaMathSelection{Types: types, Max: 2, Seed: 3}); !slices.Equal(two, want[:2]) {
		t.Errorf("filtered with Max 2: %+v, want %+v", two, want[:2])
	}
	_, err = ReadMetaMathQA(metaMathArray, MetaMathSelection{Types: []string{"GSM_Forward", "MATH"}})
	for _, s := range []string{metaMathArray, "GSM_Forward, MATH", "GSM_AnsAug (4)", "GSM_FOBAR (1)", "GSM_Rephrased (2)", "GSM_SV (2)", "MATH_AnsAug (2)", "MATH_FOBAR (1)"} {
		if err == nil || !strings.Contains(err.Error(), s) {
			t.Errorf("filter keeping nothing: error %v lacks %q", err, s)
		}
	}
}

// TestReadMetaMathQAErrors: malformed files are errors naming the file, the
// record and its line.
func TestReadMetaMathQAErrors(t *testing.T) {
	fixture, err := os.ReadFile(metaMathArray)
	if err != nil {
		t.Fatal(err)
	}
	// Record 3 of the fixture starts at line 2 + 6*3 = 20; its query, where
	// the file is cut, is on line 21.
	cut := strings.Index(string(fixture), "A baker fills 4 trays with 6 rolls each. She sells some rolls.")
	tests := []struct {
		name, content string
		line          int
		contains      []string
	}{
		{"truncated array", string(fixture[:cut]), 21, []string{"record 3", "ends inside the record", "3 complete records"}},
		{"array not closed", "[\n{\"query\": \"q\", \"response\": \"r\"},\n{\"query\": \"q\", \"response\": \"r\"}\n", 4, []string{"not closed", "after record 1"}},
		{"missing query", "[\n  {\"query\": \"q\", \"response\": \"r\"},\n  {\"query\": \"q\", \"response\": \"r\"},\n  {\n    \"response\": \"r\",\n    \"type\": \"GSM_SV\"\n  }\n]\n", 4, []string{"record 2", `missing field "query"`}},
		{"empty response", "[{\"query\": \"q\", \"response\": \"\"}]", 1, []string{"record 0", `field "response" is empty`}},
		{"response not a string", "[\n{\"query\": \"q\",\n \"response\": 42}]", 2, []string{"record 0", `field "response" is a number, want a string`}},
		{"query null", "[{\"query\": null, \"response\": \"r\"}]", 1, []string{`field "query" is null`}},
		{"type not a string", "[{\"query\": \"q\", \"response\": \"r\", \"type\": [\"GSM_SV\"]}]", 1, []string{`field "type" is an array`}},
		{"record not an object", "[\n{\"query\": \"q\", \"response\": \"r\"},\n 7\n]", 3, []string{"record 1", "a JSON number, want an object"}},
		{"record null", "[null]", 1, []string{"record 0", "null, want an object"}},
		{"syntax error", "[\n{\"query\": \"q\",\n \"response\": \"r\",}\n]", 3, []string{"record 0", "invalid JSON"}},
		{"data after the array", "[{\"query\": \"q\", \"response\": \"r\"}]\n]", 2, []string{"after the closing ]"}},
		{"empty array", "[ ]", 0, []string{"no records"}},
		{"empty file", " \n", 0, []string{"no records"}},
		{"not JSON", "query,response\n", 1, []string{"neither a JSON array nor JSON Lines", `'q'`}},
		{"JSON Lines bad line", "{\"query\": \"q\", \"response\": \"r\"}\n\n{\"query\": \"q\"\n", 3, []string{"record 1", "invalid JSON"}},
		{"JSON Lines missing response", "\n{\"query\": \"q\", \"response\": \"r\"}\n{\"query\": \"q\", \"response\": \"r\"}\n\n{\"query\": \"q\"}\n", 5, []string{"record 2", `missing field "response"`}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			path := writeFile(t, t.TempDir(), "MetaMathQA.json", tc.content)
			_, err := ReadMetaMathQA(path, MetaMathSelection{})
			var ie *InputError
			if !errors.As(err, &ie) {
				t.Fatalf("error %v is not an InputError", err)
			}
			if ie.File != path || ie.Line != tc.line {
				t.Errorf("error at %s:%d, want %s:%d (%v)", ie.File, ie.Line, path, tc.line, err)
			}
			for _, c := range tc.contains {
				if !strings.Contains(err.Error(), c) {
					t.Errorf("error %q lacks %q", err, c)
				}
			}
			// The positions do not depend on how the reads are cut.
			err1 := scanMetaMathQA(path, iotest.OneByteReader(strings.NewReader(tc.content)), func(int, MetaMathRecord) {})
			if tc.line > 0 && (err1 == nil || err1.Error() != err.Error()) {
				t.Errorf("one byte at a time: %v, want %v", err1, err)
			}
		})
	}
	if _, err := ReadMetaMathQA(filepath.Join(t.TempDir(), "absent.json"), MetaMathSelection{}); err == nil || !strings.Contains(err.Error(), "absent.json") {
		t.Errorf("missing file: %v", err)
	}
}

// TestReadMetaMathQAByteOrderMark: a UTF-8 byte order mark before the array
// is skipped and lines still count from the top.
func TestReadMetaMathQAByteOrderMark(t *testing.T) {
	path := writeFile(t, t.TempDir(), "m.json", "\xef\xbb\xbf\n[\n{\"query\": \"q\", \"response\": \"r\"},\n{\"query\": \"q\"}]")
	_, err := ReadMetaMathQA(path, MetaMathSelection{})
	var ie *InputError
	if !errors.As(err, &ie) || ie.Line != 4 || !strings.Contains(err.Error(), "record 1") {
		t.Errorf("error %v, want record 1 at line 4", err)
	}
}

// FuzzScanMetaMathQA: any input is read without a panic, and the result
// (records or error, with its line) does not depend on how reads are cut.
func FuzzScanMetaMathQA(f *testing.F) {
	for _, p := range []string{metaMathArray, metaMathLines} {
		b, err := os.ReadFile(p)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(string(b[:min(len(b), 600)]))
	}
	f.Add("[\n{\"query\": \"q\", \"response\": \"r\"},\n 7\n]")
	f.Add("\xef\xbb\xbf {\"query\": \"q\", \"response\": \"r\", \"type\": \"GSM_SV\"}\n\n{}")
	f.Fuzz(func(t *testing.T, s string) {
		scan := func(r io.Reader) ([]MetaMathRecord, error) {
			var recs []MetaMathRecord
			err := scanMetaMathQA("f.json", r, func(_ int, rec MetaMathRecord) { recs = append(recs, rec) })
			return recs, err
		}
		recs, err := scan(strings.NewReader(s))
		recs1, err1 := scan(iotest.OneByteReader(strings.NewReader(s)))
		if (err == nil) != (err1 == nil) || (err != nil && err.Error() != err1.Error()) || !slices.Equal(recs, recs1) {
			t.Errorf("whole reads: %d records, %v; one byte at a time: %d records, %v", len(recs), err, len(recs1), err1)
		}
	})
}
