package datasets

import (
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"unicode/utf8"
)

// MMLUDoc is one four-way multiple-choice question of MMLU.
type MMLUDoc struct {
	// Subject is the file name without "_<split>.csv", e.g. "abstract_algebra"
	// (for auxiliary_train files, the file name without ".csv").
	Subject string
	// Index is the 0-based position of the question in its subject file, which
	// is lm-evaluation-harness's doc_id for the task mmlu_<subject>.
	Index int
	// Question is the question text exactly as stored (prompts strip it).
	Question string
	// Choices are the four answers A-D exactly as stored (never stripped).
	Choices [4]string
	// Answer is the index of the correct choice, 0-3 for A-D.
	Answer int
}

// MMLUContinuations are the four continuations whose log-likelihoods are
// compared after an MMLU prompt (lm-eval's target delimiter " " + choice).
var MMLUContinuations = [4]string{" A", " B", " C", " D"}

// mmluLetters maps an answer index to its letter.
const mmluLetters = "ABCD"

// MMLU splits of the original data.tar layout.
const (
	MMLUSplitDev            = "dev"
	MMLUSplitVal            = "val"
	MMLUSplitTest           = "test"
	MMLUSplitAuxiliaryTrain = "auxiliary_train"
)

// ReadMMLU reads the MMLU questions of one split from root/<split>/, in the
// original data.tar layout: files <subject>_<split>.csv (auxiliary_train:
// <name>.csv), columns question,A,B,C,D,answer with RFC 4180 quoting.
// Each file may start with a header row (first column "question", last
// "answer"); answers may be letters A-D or integers 0-3.
//
// subjects selects and orders the subjects to read; nil (or empty) reads all
// subjects found, sorted by name. Within a subject, questions keep file order.
// A missing split directory, a requested subject without a file, a malformed
// row (reported as file:line), a row with fewer than four choices and an empty
// or unknown answer are errors. An empty file contributes no questions (see
// ReadMMLUSubjects to tell which subjects have none).
func ReadMMLU(root, split string, subjects []string) ([]MMLUDoc, error) {
	files, err := ReadMMLUSubjects(root, split, subjects)
	if err != nil {
		return nil, err
	}
	var docs []MMLUDoc
	for _, f := range files {
		docs = append(docs, f.Docs...)
	}
	return docs, nil
}

// ReadMMLUTrain reads every question of an MMLU training directory, in the
// order of ReadMMLU: the auxiliary_train directory of data.tar, a directory
// holding auxiliary_train/ (the extracted data.tar root), or another split
// directory of the layout (dev, val or test, files <subject>_<split>.csv).
func ReadMMLUTrain(dir string) ([]MMLUDoc, error) {
	dir = filepath.Clean(dir)
	if info, err := os.Stat(filepath.Join(dir, MMLUSplitAuxiliaryTrain)); err == nil && info.IsDir() {
		return ReadMMLU(dir, MMLUSplitAuxiliaryTrain, nil)
	}
	return ReadMMLU(filepath.Dir(dir), filepath.Base(dir), nil)
}

// MMLUFile is the questions of one subject file of a split.
type MMLUFile struct {
	Subject string
	Path    string
	Docs    []MMLUDoc // empty for a file without questions
}

// ReadMMLUSubjects reads a split as ReadMMLU does but keeps the questions
// per subject file, one MMLUFile for each subject in order, including
// subjects whose file holds no questions.
func ReadMMLUSubjects(root, split string, subjects []string) ([]MMLUFile, error) {
	if split == "" || strings.ContainsAny(split, `/\`) {
		return nil, fmt.Errorf("datasets: MMLU split %q is not a directory name (want dev, val, test or auxiliary_train)", split)
	}
	dir := filepath.Join(root, split)
	files, err := mmluSubjectFiles(dir, split)
	if err != nil {
		return nil, err
	}
	if len(subjects) == 0 {
		subjects = make([]string, 0, len(files))
		for s := range files {
			subjects = append(subjects, s)
		}
		sort.Strings(subjects)
	}
	seen := make(map[string]bool, len(subjects))
	out := make([]MMLUFile, 0, len(subjects))
	for _, s := range subjects {
		if seen[s] {
			return nil, fmt.Errorf("datasets: MMLU subject %q requested twice", s)
		}
		seen[s] = true
		path, ok := files[s]
		if !ok {
			return nil, fmt.Errorf("datasets: MMLU subject %q has no file %s in %s (%d subjects found there)",
				s, mmluFileName(s, split), dir, len(files))
		}
		data, err := os.ReadFile(path)
		if err != nil {
			return nil, fmt.Errorf("datasets: reading MMLU subject %q: %w", s, err)
		}
		docs, err := parseMMLUCSV(path, s, data)
		if err != nil {
			return nil, err
		}
		out = append(out, MMLUFile{Subject: s, Path: path, Docs: docs})
	}
	return out, nil
}

// mmluFileName is the file name of a subject in a split.
func mmluFileName(subject, split string) string {
	if split == MMLUSplitAuxiliaryTrain {
		return subject + ".csv"
	}
	return subject + "_" + split + ".csv"
}

// mmluSubjectFiles maps subject name to file path for the CSV files of dir.
func mmluSubjectFiles(dir, split string) (map[string]string, error) {
	entries, err := os.ReadDir(dir)
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return nil, fmt.Errorf("datasets: MMLU split directory %s does not exist (expected the data.tar layout <root>/%s/<subject>_%s.csv)", dir, split, split)
		}
		return nil, fmt.Errorf("datasets: reading MMLU split directory: %w", err)
	}
	files := make(map[string]string)
	for _, e := range entries {
		name := e.Name()
		if e.IsDir() || !strings.HasSuffix(name, ".csv") {
			continue
		}
		suffix := ".csv"
		if split != MMLUSplitAuxiliaryTrain {
			suffix = "_" + split + ".csv"
		}
		subject, ok := strings.CutSuffix(name, suffix)
		if !ok || subject == "" {
			return nil, fmt.Errorf("datasets: %s: MMLU file name does not have the form <subject>%s", filepath.Join(dir, name), suffix)
		}
		files[subject] = filepath.Join(dir, name)
	}
	if len(files) == 0 {
		return nil, fmt.Errorf("datasets: MMLU split directory %s holds no %s files", dir, mmluFileName("<subject>", split))
	}
	return files, nil
}

// parseMMLUCSV parses the CSV bytes of one subject file; file names the
// source in errors.
func parseMMLUCSV(file, subject string, data []byte) ([]MMLUDoc, error) {
	data = bytes.TrimPrefix(data, []byte("\xef\xbb\xbf"))
	records, err := parseCSV(data)
	if err != nil {
		var se *csvSyntaxError
		if errors.As(err, &se) {
			return nil, inputErrorf(file, se.line, "malformed CSV: %s", se.msg)
		}
		return nil, inputErrorf(file, 0, "malformed CSV: %v", err)
	}
	if len(records) > 0 && isMMLUHeader(records[0].fields) {
		records = records[1:]
	}
	docs := make([]MMLUDoc, 0, len(records))
	for i, rec := range records {
		f := rec.fields
		if len(f) != 6 {
			msg := "want 6 (question, A, B, C, D, answer)"
			if len(f) < 6 {
				msg += fmt.Sprintf(": only %d choices", max(len(f)-2, 0))
			}
			return nil, inputErrorf(file, rec.line, "row has %d fields, %s", len(f), msg)
		}
		for j, s := range f {
			if !utf8.ValidString(s) {
				return nil, inputErrorf(file, rec.line, "field %d is not valid UTF-8", j+1)
			}
		}
		if strings.TrimSpace(f[0]) == "" {
			return nil, inputErrorf(file, rec.line, "empty question")
		}
		answer, err := parseMMLUAnswer(f[5])
		if err != nil {
			return nil, inputErrorf(file, rec.line, "%v", err)
		}
		docs = append(docs, MMLUDoc{
			Subject:  subject,
			Index:    i,
			Question: f[0],
			Choices:  [4]string{f[1], f[2], f[3], f[4]},
			Answer:   answer,
		})
	}
	return docs, nil
}

// isMMLUHeader reports whether a first record is a header row.
func isMMLUHeader(f []string) bool {
	return len(f) == 6 &&
		strings.EqualFold(strings.TrimSpace(f[0]), "question") &&
		strings.EqualFold(strings.TrimSpace(f[5]), "answer")
}

// parseMMLUAnswer reads an answer cell: a letter A-D or an integer 0-3.
func parseMMLUAnswer(s string) (int, error) {
	t := strings.TrimSpace(s)
	if t == "" {
		return 0, errors.New("empty answer (want A, B, C or D)")
	}
	if len(t) == 1 {
		if i := strings.IndexByte(mmluLetters, t[0]); i >= 0 {
			return i, nil
		}
		if t[0] >= '0' && t[0] <= '3' {
			return int(t[0] - '0'), nil
		}
	}
	return 0, fmt.Errorf("answer %q is not one of A, B, C, D (or 0-3)", s)
}

// MMLUDescription is the task description lm-eval puts before every MMLU
// prompt: "The following are multiple choice questions (with answers) about
// {subject with underscores read as spaces}.\n\n".
func MMLUDescription(subject string) string {
	return "The following are multiple choice questions (with answers) about " +
		strings.ReplaceAll(subject, "_", " ") + ".\n\n"
}

// mmluQuestion renders one question as lm-eval's default template does:
// "{question.strip()}\nA. {A}\nB. {B}\nC. {C}\nD. {D}\nAnswer:". The choices
// are not stripped.
func mmluQuestion(d MMLUDoc) string {
	var b strings.Builder
	b.WriteString(pyStrip(d.Question))
	for i, c := range d.Choices {
		b.WriteString("\n")
		b.WriteByte(mmluLetters[i])
		b.WriteString(". ")
		b.WriteString(c)
	}
	b.WriteString("\nAnswer:")
	return b.String()
}

// MMLULetter returns the letter "A".."D" of an answer index 0-3.
func MMLULetter(answer int) string {
	if answer < 0 || answer > 3 {
		panic(fmt.Sprintf("datasets: MMLU answer index %d out of range 0-3", answer))
	}
	return mmluLetters[answer : answer+1]
}

// MMLUPrompt renders the prompt lm-eval's mmlu task feeds the model for d:
// the subject's description, then each shot as its question followed by
// " {letter}" and "\n\n", then d's question ending in "Answer:". Shots are
// the first k questions of the subject's dev split (lm-eval's first_n sampler).
func MMLUPrompt(subject string, shots []MMLUDoc, d MMLUDoc) string {
	var b strings.Builder
	b.WriteString(MMLUDescription(subject))
	for _, s := range shots {
		b.WriteString(mmluQuestion(s))
		b.WriteString(MMLUContinuations[s.Answer])
		b.WriteString("\n\n")
	}
	b.WriteString(mmluQuestion(d))
	return b.String()
}

// MMLUTrainExample turns a question into a training example: the zero-shot
// prompt (question and choices ending in "Answer:") and the response
// " {letter}", the continuation the evaluation scores. A question of one of
// MMLU's 57 subjects is preceded by its subject's description line, as in
// MMLUPrompt; any other file, such as the auxiliary_train sources (ARC,
// OBQA, RACE, MCTest, ...), which are not MMLU subjects, gets none.
func MMLUTrainExample(d MMLUDoc) Example {
	prompt := mmluQuestion(d)
	if MMLUCategory(d.Subject) != "" {
		prompt = MMLUDescription(d.Subject) + prompt
	}
	return Example{Prompt: prompt, Response: MMLUContinuations[d.Answer]}
}

// MMLUPredict returns the index of the largest of the four continuation
// log-likelihoods (the first one on ties, like numpy's argmax).
func MMLUPredict(logLikelihoods [4]float64) int {
	best := 0
	for i := 1; i < 4; i++ {
		if logLikelihoods[i] > logLikelihoods[best] {
			best = i
		}
	}
	return best
}

// MMLU categories as lm-eval names its groups.
const (
	CategorySTEM           = "stem"
	CategoryHumanities     = "humanities"
	CategorySocialSciences = "social_sciences"
	CategoryOther          = "other"
)

// MMLUCategoryNames lists the four categories in the order results tables use.
var MMLUCategoryNames = []string{CategorySTEM, CategoryHumanities, CategorySocialSciences, CategoryOther}

// mmluCategories is lm-eval's subject -> category map
// (lm_eval/tasks/mmlu/_generate_configs.py): 19 stem, 13 humanities,
// 12 social_sciences, 13 other.
var mmluCategories = map[string]string{
	"abstract_algebra":                    CategorySTEM,
	"anatomy":                             CategorySTEM,
	"astronomy":                           CategorySTEM,
	"business_ethics":                     CategoryOther,
	"clinical_knowledge":                  CategoryOther,
	"college_biology":                     CategorySTEM,
	"college_chemistry":                   CategorySTEM,
	"college_computer_science":            CategorySTEM,
	"college_mathematics":                 CategorySTEM,
	"college_medicine":                    CategoryOther,
	"college_physics":                     CategorySTEM,
	"computer_security":                   CategorySTEM,
	"conceptual_physics":                  CategorySTEM,
	"econometrics":                        CategorySocialSciences,
	"electrical_engineering":              CategorySTEM,
	"elementary_mathematics":              CategorySTEM,
	"formal_logic":                        CategoryHumanities,
	"global_facts":                        CategoryOther,
	"high_school_biology":                 CategorySTEM,
	"high_school_chemistry":               CategorySTEM,
	"high_school_computer_science":        CategorySTEM,
	"high_school_european_history":        CategoryHumanities,
	"high_school_geography":               CategorySocialSciences,
	"high_school_government_and_politics": CategorySocialSciences,
	"high_school_macroeconomics":          CategorySocialSciences,
	"high_school_mathematics":             CategorySTEM,
	"high_school_microeconomics":          CategorySocialSciences,
	"high_school_physics":                 CategorySTEM,
	"high_school_psychology":              CategorySocialSciences,
	"high_school_statistics":              CategorySTEM,
	"high_school_us_history":              CategoryHumanities,
	"high_school_world_history":           CategoryHumanities,
	"human_aging":                         CategoryOther,
	"human_sexuality":                     CategorySocialSciences,
	"international_law":                   CategoryHumanities,
	"jurisprudence":                       CategoryHumanities,
	"logical_fallacies":                   CategoryHumanities,
	"machine_learning":                    CategorySTEM,
	"management":                          CategoryOther,
	"marketing":                           CategoryOther,
	"medical_genetics":                    CategoryOther,
	"miscellaneous":                       CategoryOther,
	"moral_disputes":                      CategoryHumanities,
	"moral_scenarios":                     CategoryHumanities,
	"nutrition":                           CategoryOther,
	"philosophy":                          CategoryHumanities,
	"prehistory":                          CategoryHumanities,
	"professional_accounting":             CategoryOther,
	"professional_law":                    CategoryHumanities,
	"professional_medicine":               CategoryOther,
	"professional_psychology":             CategorySocialSciences,
	"public_relations":                    CategorySocialSciences,
	"security_studies":                    CategorySocialSciences,
	"sociology":                           CategorySocialSciences,
	"us_foreign_policy":                   CategorySocialSciences,
	"virology":                            CategoryOther,
	"world_religions":                     CategoryHumanities,
}

// MMLUCategory returns the lm-eval category of a subject ("stem",
// "humanities", "social_sciences" or "other"), or "" for a subject that is
// not one of MMLU's 57.
func MMLUCategory(subject string) string { return mmluCategories[subject] }

// MMLUSubjects returns the 57 MMLU subjects in alphabetical order.
func MMLUSubjects() []string {
	s := make([]string, 0, len(mmluCategories))
	for k := range mmluCategories {
		s = append(s, k)
	}
	sort.Strings(s)
	return s
}
