package datasets

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// pythonMMLUDigest is the SHA-256 that Python 3.11 computes over the real
// dev and test files read with csv.reader on the raw UTF-8 lines (as the
// HuggingFace MMLU builder did), each record serialised as
// split \x1d subject \x1d question \x1d A \x1d B \x1d C \x1d D \x1d letter \x1e,
// splits dev then test, files in sorted order.
const pythonMMLUDigest = "03d1f4d99f8fc0ca811409c8cda1e3e5e534f52b7534c10be27382f2cc771494"

func TestReadMMLURealAssets(t *testing.T) {
	root := filepath.Join(assetsDir(t), "mmlu")
	h := sha256.New()
	counts := map[string]int{}
	for _, split := range []string{MMLUSplitDev, MMLUSplitTest} {
		docs, err := ReadMMLU(root, split, nil)
		if err != nil {
			t.Fatal(err)
		}
		subjects := map[string]int{}
		for _, d := range docs {
			subjects[d.Subject]++
			fields := []string{split, d.Subject, d.Question, d.Choices[0], d.Choices[1], d.Choices[2], d.Choices[3], MMLULetter(d.Answer)}
			h.Write([]byte(strings.Join(fields, "\x1d") + "\x1e"))
			if split == MMLUSplitTest {
				counts[MMLUCategory(d.Subject)]++
			}
		}
		if len(subjects) != 57 {
			t.Errorf("%s: %d subjects, want 57", split, len(subjects))
		}
		want := map[string]int{MMLUSplitDev: 285, MMLUSplitTest: 14042}[split]
		if len(docs) != want {
			t.Errorf("%s: %d questions, want %d", split, len(docs), want)
		}
		if split == MMLUSplitDev {
			for s, n := range subjects {
				if n != 5 {
					t.Errorf("dev subject %s has %d questions, want 5", s, n)
				}
			}
		}
	}
	if got := hex.EncodeToString(h.Sum(nil)); got != pythonMMLUDigest {
		t.Errorf("digest of parsed MMLU = %s, want Python's %s", got, pythonMMLUDigest)
	}
	// Test questions per category, counted with Python over the same files.
	wantCounts := map[string]int{CategorySTEM: 3153, CategoryHumanities: 4705, CategorySocialSciences: 3077, CategoryOther: 3107}
	for c, n := range wantCounts {
		if counts[c] != n {
			t.Errorf("category %s: %d test questions, want %d", c, counts[c], n)
		}
	}
	if counts[""] != 0 {
		t.Errorf("%d test questions have no category", counts[""])
	}
}

func TestReadMMLUKeepsCRLFInsideQuotes(t *testing.T) {
	root := filepath.Join(assetsDir(t), "mmlu")
	docs, err := ReadMMLU(root, MMLUSplitDev, []string{"college_mathematics"})
	if err != nil {
		t.Fatal(err)
	}
	const want = "Let A be a real 2x2 matrix. Which of the following statements must be true?\r\nI. All of the entries of A^2 are nonnegative.\r\n"
	found := false
	for _, d := range docs {
		if strings.HasPrefix(d.Question, want) {
			found = true
		}
	}
	if !found {
		t.Errorf("no college_mathematics dev question starts with %q", want)
	}
}

func TestReadMMLUSubjectSelectionAndOrder(t *testing.T) {
	root := filepath.Join(assetsDir(t), "mmlu")
	docs, err := ReadMMLU(root, MMLUSplitDev, []string{"world_religions", "anatomy"})
	if err != nil {
		t.Fatal(err)
	}
	if len(docs) != 10 || docs[0].Subject != "world_religions" || docs[5].Subject != "anatomy" {
		t.Fatalf("got %d docs, first %q, sixth %q", len(docs), docs[0].Subject, docs[5].Subject)
	}
	for i, d := range docs {
		if d.Index != i%5 {
			t.Errorf("doc %d has index %d, want %d", i, d.Index, i%5)
		}
	}
	want := MMLUDoc{Subject: "world_religions", Index: 0,
		Question: " What is the sign of the covenant for Jewish males?",
		Choices:  [4]string{"The rainbow", "Circumcision", "A son", "Bar mitzvah"}, Answer: 1}
	if docs[0] != want {
		t.Errorf("first doc = %+v, want %+v", docs[0], want)
	}
}

func TestReadMMLUHeaderAndIntegerAnswers(t *testing.T) {
	root := t.TempDir()
	writeFile(t, root, "val/astronomy_val.csv", "question,A,B,C,D,answer\n\"Q1, sun\",a,b,c,d,0\nQ2,a,b,c,d,3\n")
	writeFile(t, root, "val/anatomy_val.csv", "Q3,a,b,c,d,C\r\n")
	writeFile(t, root, "val/README.txt", "not a csv\n")
	docs, err := ReadMMLU(root, MMLUSplitVal, nil)
	if err != nil {
		t.Fatal(err)
	}
	want := []MMLUDoc{
		{Subject: "anatomy", Index: 0, Question: "Q3", Choices: [4]string{"a", "b", "c", "d"}, Answer: 2},
		{Subject: "astronomy", Index: 0, Question: "Q1, sun", Choices: [4]string{"a", "b", "c", "d"}, Answer: 0},
		{Subject: "astronomy", Index: 1, Question: "Q2", Choices: [4]string{"a", "b", "c", "d"}, Answer: 3},
	}
	if len(docs) != len(want) {
		t.Fatalf("got %d docs %+v, want %d", len(docs), docs, len(want))
	}
	for i := range want {
		if docs[i] != want[i] {
			t.Errorf("doc %d = %+v, want %+v", i, docs[i], want[i])
		}
	}
}

func TestReadMMLUAuxiliaryTrainNames(t *testing.T) {
	root := t.TempDir()
	writeFile(t, root, "auxiliary_train/arc_easy.csv", "Q,a,b,c,d,A\n")
	docs, err := ReadMMLU(root, MMLUSplitAuxiliaryTrain, nil)
	if err != nil {
		t.Fatal(err)
	}
	if len(docs) != 1 || docs[0].Subject != "arc_easy" {
		t.Errorf("got %+v, want one doc of subject arc_easy", docs)
	}
}

func TestReadMMLUErrors(t *testing.T) {
	tests := []struct {
		name     string
		file     string // written as test/x_test.csv unless it contains '/'
		content  string
		subjects []string
		contains []string
	}{
		{"fewer than four choices", "", "Q,a,b,c,d,A\nQ2,a,b,C\n", nil, []string{"x_test.csv:2:", "4 fields", "only 2 choices"}},
		{"too many fields", "", "Q,a,b,c,d,A,extra\n", nil, []string{"x_test.csv:1:", "7 fields"}},
		{"empty answer", "", "Q,a,b,c,d,A\n\"multi\nline\",a,b,c,d,\n", nil, []string{"x_test.csv:2:", "empty answer"}},
		{"unknown answer", "", "Q,a,b,c,d,E\n", nil, []string{"x_test.csv:1:", `answer "E"`}},
		{"malformed quoting", "", "Q,a,b,c,d,A\nQ,a,\"b\"x,c,d,A\n", nil, []string{"x_test.csv:2:", "malformed CSV"}},
		{"empty question", "", "  ,a,b,c,d,A\n", nil, []string{"x_test.csv:1:", "empty question"}},
		{"invalid utf8", "", "Q\xff,a,b,c,d,A\n", nil, []string{"x_test.csv:1:", "UTF-8"}},
		{"missing subject", "", "Q,a,b,c,d,A\n", []string{"x", "virology"}, []string{`"virology"`, "virology_test.csv"}},
		{"duplicate subject", "", "Q,a,b,c,d,A\n", []string{"x", "x"}, []string{`"x"`, "twice"}},
		{"bad file name", "test/notes.csv", "Q,a,b,c,d,A\n", nil, []string{"notes.csv", "<subject>_test.csv"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			root := t.TempDir()
			name := tc.file
			if name == "" {
				name = "test/x_test.csv"
			}
			writeFile(t, root, name, tc.content)
			_, err := ReadMMLU(root, MMLUSplitTest, tc.subjects)
			if err == nil {
				t.Fatal("no error")
			}
			for _, c := range tc.contains {
				if !strings.Contains(err.Error(), c) {
					t.Errorf("error %q does not contain %q", err, c)
				}
			}
		})
	}
	t.Run("missing split directory", func(t *testing.T) {
		_, err := ReadMMLU(t.TempDir(), MMLUSplitVal, nil)
		if err == nil || !strings.Contains(err.Error(), "val") || !strings.Contains(err.Error(), "does not exist") {
			t.Errorf("error = %v, want a missing val directory", err)
		}
	})
	t.Run("line error is an InputError", func(t *testing.T) {
		root := t.TempDir()
		path := writeFile(t, root, "test/x_test.csv", "Q,a,b,c,d,A\n\nQ,a,b,c,d,Z\n")
		_, err := ReadMMLU(root, MMLUSplitTest, nil)
		var ie *InputError
		if !errors.As(err, &ie) || ie.File != path || ie.Line != 3 {
			t.Errorf("error = %#v, want InputError at %s:3", err, path)
		}
	})
}

func TestMMLUPromptZeroShot(t *testing.T) {
	d := MMLUDoc{Subject: "world_religions", Question: " What can murtis be translated as?",
		Choices: [4]string{"Offerings", "Prayers", "Apparitions", "Idols"}, Answer: 3}
	want := "The following are multiple choice questions (with answers) about world religions.\n\n" +
		"What can murtis be translated as?\nA. Offerings\nB. Prayers\nC. Apparitions\nD. Idols\nAnswer:"
	if got := MMLUPrompt("world_religions", nil, d); got != want {
		t.Errorf("MMLUPrompt =\n%q\nwant\n%q", got, want)
	}
	ex := MMLUTrainExample(d)
	if ex.Prompt != want || ex.Response != " D" {
		t.Errorf("MMLUTrainExample = %+v", ex)
	}
}

func TestMMLUPromptTwoShot(t *testing.T) {
	shots := []MMLUDoc{
		{Subject: "world_religions", Question: " What is the sign of the covenant for Jewish males?",
			Choices: [4]string{"The rainbow", "Circumcision", "A son", "Bar mitzvah"}, Answer: 1},
		{Subject: "world_religions", Question: "What is the Second Gem in Buddhism?",
			Choices: [4]string{"The Dharma", "The Sangha", "The Buddha", "The Bodhisattva"}, Answer: 0},
	}
	// A choice with surrounding whitespace stays as is; only the question is stripped.
	d := MMLUDoc{Subject: "world_religions", Question: "\t What can murtis be translated as?\n",
		Choices: [4]string{"Offerings", " Prayers ", "Apparitions", "Idols"}, Answer: 3}
	want := "The following are multiple choice questions (with answers) about world religions.\n\n" +
		"What is the sign of the covenant for Jewish males?\nA. The rainbow\nB. Circumcision\nC. A son\nD. Bar mitzvah\nAnswer: B\n\n" +
		"What is the Second Gem in Buddhism?\nA. The Dharma\nB. The Sangha\nC. The Buddha\nD. The Bodhisattva\nAnswer: A\n\n" +
		"What can murtis be translated as?\nA. Offerings\nB.  Prayers \nC. Apparitions\nD. Idols\nAnswer:"
	if got := MMLUPrompt("world_religions", shots, d); got != want {
		t.Errorf("MMLUPrompt =\n%q\nwant\n%q", got, want)
	}
}

func TestMMLUPromptFromRealDevShots(t *testing.T) {
	root := filepath.Join(assetsDir(t), "mmlu")
	dev, err := ReadMMLU(root, MMLUSplitDev, []string{"professional_psychology"})
	if err != nil {
		t.Fatal(err)
	}
	// Row 4 of the dev file holds a choice with doubled quotes and one with a
	// trailing space; both must reach the prompt unchanged.
	got := mmluQuestion(dev[3])
	want := "Carl Jung believed that a client's transference:\n" +
		"A. is a fantasy that distracts the client from reality.\n" +
		"B. represents “mixed feelings” toward the therapist. \n" +
		"C. \"is a form of \"\"acting out.\"\"\"\n" +
		"D. reflects the client’s personal and collective unconscious.\nAnswer:"
	if got != want {
		t.Errorf("question =\n%q\nwant\n%q", got, want)
	}
}

func TestMMLUCategories(t *testing.T) {
	counts := map[string]int{}
	for _, s := range MMLUSubjects() {
		counts[MMLUCategory(s)]++
	}
	// lm-eval's _generate_configs.py: 19 stem, 13 humanities, 12 social
	// sciences, 13 other (57 subjects).
	want := map[string]int{CategorySTEM: 19, CategoryHumanities: 13, CategorySocialSciences: 12, CategoryOther: 13}
	if len(counts) != len(want) {
		t.Errorf("categories %v, want %v", counts, want)
	}
	for c, n := range want {
		if counts[c] != n {
			t.Errorf("category %s has %d subjects, want %d", c, counts[c], n)
		}
	}
	spot := map[string]string{
		"econometrics": CategorySocialSciences, "formal_logic": CategoryHumanities,
		"global_facts": CategoryOther, "machine_learning": CategorySTEM, "nope": "",
	}
	for s, c := range spot {
		if got := MMLUCategory(s); got != c {
			t.Errorf("MMLUCategory(%q) = %q, want %q", s, got, c)
		}
	}
	root := filepath.Join(assetsDir(t), "mmlu")
	files, err := mmluSubjectFiles(filepath.Join(root, MMLUSplitTest), MMLUSplitTest)
	if err != nil {
		t.Fatal(err)
	}
	for s := range files {
		if MMLUCategory(s) == "" {
			t.Errorf("asset subject %s has no category", s)
		}
	}
}

func TestMMLUPredict(t *testing.T) {
	tests := []struct {
		ll   [4]float64
		want int
	}{
		{[4]float64{-3, -1, -2, -4}, 1},
		{[4]float64{-1, -1, -0.5, -0.5}, 2}, // ties go to the first
		{[4]float64{0, 0, 0, 0}, 0},
	}
	for _, tc := range tests {
		if got := MMLUPredict(tc.ll); got != tc.want {
			t.Errorf("MMLUPredict(%v) = %d, want %d", tc.ll, got, tc.want)
		}
	}
}

// BenchmarkReadMMLUTest reads the 14,042 MMLU test questions.
func BenchmarkReadMMLUTest(b *testing.B) {
	root := filepath.Join(assetsDir(b), "mmlu")
	for b.Loop() {
		if _, err := ReadMMLU(root, MMLUSplitTest, nil); err != nil {
			b.Fatal(err)
		}
	}
}

// TestReadMMLUSubjectsKeepsEmptyFiles checks that every subject gets its
// entry, in order, an empty file included.
func TestReadMMLUSubjectsKeepsEmptyFiles(t *testing.T) {
	root := t.TempDir()
	if err := os.MkdirAll(filepath.Join(root, "dev"), 0o755); err != nil {
		t.Fatal(err)
	}
	for name, text := range map[string]string{"anatomy_dev.csv": "", "astronomy_dev.csv": "Why?,a,b,c,d,B\n"} {
		if err := os.WriteFile(filepath.Join(root, "dev", name), []byte(text), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	files, err := ReadMMLUSubjects(root, MMLUSplitDev, nil)
	if err != nil {
		t.Fatal(err)
	}
	if len(files) != 2 || files[0].Subject != "anatomy" || len(files[0].Docs) != 0 ||
		files[0].Path != filepath.Join(root, "dev", "anatomy_dev.csv") ||
		files[1].Subject != "astronomy" || len(files[1].Docs) != 1 || files[1].Docs[0].Answer != 1 {
		t.Fatalf("files %+v", files)
	}
}
