package datasets

import (
	"bytes"
	"encoding/csv"
	"errors"
	"io"
	"reflect"
	"strings"
	"testing"
)

func TestParseCSV(t *testing.T) {
	tests := []struct {
		name  string
		in    string
		want  [][]string
		lines []int
	}{
		{"plain", "a,b,c\nd,e,f\n", [][]string{{"a", "b", "c"}, {"d", "e", "f"}}, []int{1, 2}},
		{"no final newline", "a,b\nc,d", [][]string{{"a", "b"}, {"c", "d"}}, []int{1, 2}},
		{"crlf record ends", "a,b\r\nc,d\r\n", [][]string{{"a", "b"}, {"c", "d"}}, []int{1, 2}},
		{"final cr", "a,b\r", [][]string{{"a", "b"}}, []int{1}},
		{"quoted comma", `"a,b",c` + "\n", [][]string{{"a,b", "c"}}, []int{1}},
		{"doubled quotes", `"say ""hi""",x` + "\n", [][]string{{`say "hi"`, "x"}}, []int{1}},
		{"only quotes", `""""""` + "\n", [][]string{{`""`}}, []int{1}},
		{"newline inside quotes", "\"l1\nl2\",x\ny,z\n", [][]string{{"l1\nl2", "x"}, {"y", "z"}}, []int{1, 3}},
		{"crlf inside quotes kept", "\"l1\r\nl2\",x\r\ny,z\r\n", [][]string{{"l1\r\nl2", "x"}, {"y", "z"}}, []int{1, 3}},
		{"empty fields", ",,\n", [][]string{{"", "", ""}}, []int{1}},
		{"empty quoted field", `"",a` + "\n", [][]string{{"", "a"}}, []int{1}},
		{"trailing comma at eof", "a,", [][]string{{"a", ""}}, []int{1}},
		{"blank lines skipped", "\n\na\n\r\n\nb\n", [][]string{{"a"}, {"b"}}, []int{3, 6}},
		{"spaces kept", " a , b \n", [][]string{{" a ", " b "}}, []int{1}},
		{"utf8", "∀x,“q”\n", [][]string{{"∀x", "“q”"}}, []int{1}},
		{"empty input", "", nil, nil},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			recs, err := parseCSV([]byte(tc.in))
			if err != nil {
				t.Fatalf("parseCSV(%q): %v", tc.in, err)
			}
			var got [][]string
			var lines []int
			for _, r := range recs {
				got = append(got, r.fields)
				lines = append(lines, r.line)
			}
			if !reflect.DeepEqual(got, tc.want) || !reflect.DeepEqual(lines, tc.lines) {
				t.Errorf("parseCSV(%q) = %q at lines %v, want %q at lines %v", tc.in, got, lines, tc.want, tc.lines)
			}
		})
	}
}

func TestParseCSVErrors(t *testing.T) {
	tests := []struct {
		name, in string
		line     int
		contains string
	}{
		{"bare quote", "a,b\nc,d\"e\n", 2, "bare quote"},
		{"text after closing quote", "a\n\"x\"y,z\n", 2, "after a closing quote"},
		{"unterminated", "a\nb\n\"never\nclosed\n", 3, "not terminated"},
		{"bare cr", "a\rb\n", 1, "carriage return"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := parseCSV([]byte(tc.in))
			var se *csvSyntaxError
			if !errors.As(err, &se) {
				t.Fatalf("parseCSV(%q) error = %v, want a csvSyntaxError", tc.in, err)
			}
			if se.line != tc.line || !strings.Contains(se.msg, tc.contains) {
				t.Errorf("parseCSV(%q) error = line %d %q, want line %d containing %q", tc.in, se.line, se.msg, tc.line, tc.contains)
			}
		})
	}
}

// stdlibCSV parses with encoding/csv in strict mode, for differential checks
// on inputs without carriage returns (where the two must agree exactly).
func stdlibCSV(data []byte) ([][]string, error) {
	r := csv.NewReader(bytes.NewReader(data))
	r.FieldsPerRecord = -1
	var out [][]string
	for {
		rec, err := r.Read()
		if err == io.EOF {
			return out, nil
		}
		if err != nil {
			return nil, err
		}
		out = append(out, rec)
	}
}

// quoteCSV writes records with every field quoted (a writer independent of
// the parser under test).
func quoteCSV(records [][]string) []byte {
	var b bytes.Buffer
	for _, rec := range records {
		for i, f := range rec {
			if i > 0 {
				b.WriteByte(',')
			}
			b.WriteByte('"')
			b.WriteString(strings.ReplaceAll(f, `"`, `""`))
			b.WriteByte('"')
		}
		b.WriteString("\r\n")
	}
	return b.Bytes()
}

// checkCSVProperties checks parseCSV on arbitrary input: agreement with
// encoding/csv when there is no CR, and a lossless round trip through a
// quote-everything writer whenever parsing succeeds.
func checkCSVProperties(t *testing.T, data []byte) {
	recs, err := parseCSV(data)
	var got [][]string
	for _, r := range recs {
		got = append(got, r.fields)
	}
	if !bytes.ContainsRune(data, '\r') {
		want, stdErr := stdlibCSV(data)
		if (err == nil) != (stdErr == nil) {
			t.Fatalf("parseCSV(%q) error %v, encoding/csv error %v", data, err, stdErr)
		}
		if err == nil && !reflect.DeepEqual(got, want) {
			t.Fatalf("parseCSV(%q) = %q, encoding/csv = %q", data, got, want)
		}
	}
	if err != nil {
		return
	}
	again, err := parseCSV(quoteCSV(got))
	if err != nil {
		t.Fatalf("re-parsing quoted output of %q: %v", data, err)
	}
	var back [][]string
	for _, r := range again {
		back = append(back, r.fields)
	}
	if !reflect.DeepEqual(back, got) {
		t.Fatalf("round trip of %q: got %q, want %q", data, back, got)
	}
}

func TestParseCSVAgreesWithEncodingCSV(t *testing.T) {
	for _, in := range []string{
		"a,b\n", `"a""b",c` + "\n", "\"x\ny\",z", "a,\"\",b\n\n\nc\n", `a"b` + "\n", `"a"b` + "\n", `"open`,
		",\n,,\n", " \"a\",b\n",
	} {
		checkCSVProperties(t, []byte(in))
	}
}

// FuzzReadMMLUCSV fuzzes the MMLU CSV reader: it must never panic, must agree
// with encoding/csv on the CSV layer (inputs without CR), must round-trip what
// it accepts, and every accepted question must be a valid MMLU row.
func FuzzReadMMLUCSV(f *testing.F) {
	for _, seed := range []string{
		"What is 2+2?,3,4,5,6,B\n",
		"question,A,B,C,D,answer\n\"Q, with comma\",a,b,c,d,3\n",
		"\"multi\r\nline\",\"\"\"q\"\"\",b,c,d,A\r\n",
		"q,a,b,c,D\n",
		"q,a,b,c,d,E\n",
		"\"unterminated,a,b,c,d,A\n",
		"\xef\xbb\xbfq,a,b,c,d,C\n",
	} {
		f.Add([]byte(seed))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		checkCSVProperties(t, data)
		docs, err := parseMMLUCSV("fuzz.csv", "subject", data)
		if err != nil {
			var ie *InputError
			if !errors.As(err, &ie) || ie.File != "fuzz.csv" {
				t.Fatalf("error %v does not name the file", err)
			}
			return
		}
		for i, d := range docs {
			if d.Index != i || d.Answer < 0 || d.Answer > 3 || strings.TrimSpace(d.Question) == "" {
				t.Fatalf("accepted invalid doc %+v", d)
			}
		}
	})
}
