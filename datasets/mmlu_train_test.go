package datasets

import (
	"path/filepath"
	"slices"
	"testing"
)

// TestReadMMLUTrainAuxiliary reads the auxiliary_train fixture (header-less
// question,A,B,C,D,answer CSVs, quoted passages with newlines) from the
// directory itself and from the data.tar root holding it.
func TestReadMMLUTrainAuxiliary(t *testing.T) {
	fromAux, err := ReadMMLUTrain("testdata/mmlu/auxiliary_train")
	if err != nil {
		t.Fatal(err)
	}
	fromRoot, err := ReadMMLUTrain("testdata/mmlu/")
	if err != nil {
		t.Fatal(err)
	}
	if len(fromAux) != 7 || !slices.Equal(fromAux, fromRoot) {
		t.Fatalf("auxiliary_train gave %d questions, the root %d; equal: %v", len(fromAux), len(fromRoot), slices.Equal(fromAux, fromRoot))
	}
	var subjects []string
	for _, d := range fromAux {
		subjects = append(subjects, d.Subject)
	}
	if want := []string{"arc_easy", "arc_easy", "arc_easy", "obqa", "obqa", "race", "race"}; !slices.Equal(subjects, want) {
		t.Errorf("subjects %v, want %v", subjects, want)
	}
	race := fromAux[5]
	want := MMLUDoc{Subject: "race", Index: 0,
		Question: "Article: Sam walked to the market on Saturday. He bought three apples and a loaf of bread.\n\"It is a fine day,\" he said to the baker.\nQuestion: What did Sam buy?",
		Choices:  [4]string{"Three apples and a loaf of bread.", "Two pears.", "A cake.", "Nothing."}, Answer: 0}
	if race != want {
		t.Errorf("race question 0 = %+v, want %+v", race, want)
	}
}

// TestMMLUTrainExampleAuxiliary: an auxiliary_train question is rendered as
// lm-eval's question block without a subject line, the answer letter after a
// space; an MMLU subject keeps its description line.
func TestMMLUTrainExampleAuxiliary(t *testing.T) {
	docs, err := ReadMMLUTrain("testdata/mmlu/auxiliary_train")
	if err != nil {
		t.Fatal(err)
	}
	ex := MMLUTrainExample(docs[5])
	wantPrompt := "Article: Sam walked to the market on Saturday. He bought three apples and a loaf of bread.\n" +
		"\"It is a fine day,\" he said to the baker.\nQuestion: What did Sam buy?\n" +
		"A. Three apples and a loaf of bread.\nB. Two pears.\nC. A cake.\nD. Nothing.\nAnswer:"
	if ex.Prompt != wantPrompt || ex.Response != " A" {
		t.Errorf("race example:\nprompt %q\nresponse %q\nwant\nprompt %q\nresponse \" A\"", ex.Prompt, ex.Response, wantPrompt)
	}
	ex = MMLUTrainExample(docs[1])
	if want := "What tool measures the temperature of water?\nA. ruler\nB. balance\nC. thermometer\nD. stopwatch\nAnswer:"; ex.Prompt != want || ex.Response != " C" {
		t.Errorf("arc_easy example %+v", ex)
	}
	d := docs[1]
	d.Subject = "high_school_physics"
	if want := "The following are multiple choice questions (with answers) about high school physics.\n\n" + ex.Prompt; MMLUTrainExample(d).Prompt != want {
		t.Errorf("MMLU subject prompt %q", MMLUTrainExample(d).Prompt)
	}
}

// TestReadMMLUTrainSplitDirectory: another split directory of the layout
// (here dev) is read with its <subject>_<split>.csv names.
func TestReadMMLUTrainSplitDirectory(t *testing.T) {
	root := t.TempDir()
	writeFile(t, root, "dev/virology_dev.csv", "Q1,a,b,c,d,B\n")
	docs, err := ReadMMLUTrain(filepath.Join(root, "dev"))
	if err != nil || len(docs) != 1 || docs[0].Subject != "virology" || docs[0].Answer != 1 {
		t.Errorf("docs %+v, err %v", docs, err)
	}
	if _, err := ReadMMLUTrain(filepath.Join(root, "nothing")); err == nil {
		t.Error("a missing directory gave no error")
	}
}
