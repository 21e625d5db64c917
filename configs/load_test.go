package configs

import (
	"errors"
	"math"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"
)

// setAssetEnv points the variables the presets use at temporary directories.
func setAssetEnv(t *testing.T) (assets, model, aux string) {
	t.Helper()
	assets, model, aux = t.TempDir(), t.TempDir(), t.TempDir()
	t.Setenv("SALR_ASSETS", assets)
	t.Setenv("SALR_MODEL", model)
	t.Setenv("SALR_MMLU", aux)
	t.Setenv("SALR_METAMATHQA", aux)
	return assets, model, filepath.Join(aux, "auxiliary_train")
}

// unsetEnv removes a variable for the duration of the test.
func unsetEnv(t *testing.T, name string) {
	t.Helper()
	t.Setenv(name, "") // registers the restore
	os.Unsetenv(name)
}

// schemaContract is the schema block of the task brief, the public contract
// of key names and quickstart defaults; Default must equal it.
const schemaContract = `
method = "salr"
[model]
path = "${SALR_ASSETS}/stories260K/stories260K.bin"
tokenizer = ""
[sparsity]
ratio = 0.5
pattern = "matrix"
score = "magnitude"
calibration_batches = 4
target_modules = ["all-linear"]
[adapters]
target_modules = ["all-linear"]
lora_rank = 16
lora_alpha = 32.0
lora_dropout = 0.05
lora_init = "kaiming"
rslora = false
svd_rank = 16
svd_trainable = true
svd_method = "auto"
svd_oversample = 64
svd_power_iters = 16
[data]
format = "gsm8k"
train_path = "${SALR_ASSETS}/gsm8k/train.jsonl"
eval_path = ""
eval_examples = 200
prompt_field = "query"
response_field = "response"
seq_len = 256
overlong = "truncate"
max_examples = 0
[train]
max_steps = 300
batch_size = 8
grad_accum = 1
lr = 2e-4
weight_decay = 0.0
adam_beta1 = 0.9
adam_beta2 = 0.999
adam_eps = 1e-8
warmup_steps = 10
schedule = "cosine"
min_lr_ratio = 0.0
grad_clip = 1.0
seed = 42
eval_every = 50
eval_batches = 0
log_every = 1
checkpoint_every = 50
threads = 0
[eval]
task = ""
template = ""
shots = -1
limit = 0
data_path = ""
max_new_tokens = 0
batch = 8
bos = "tokenizer"
[output]
dir = "runs/quickstart"
save_peft = true
save_base = true
base_format = "bitmap-bf16"
`

func TestDefaultValidatesAndMatchesContract(t *testing.T) {
	def := Default()
	if err := def.Validate(); err != nil {
		t.Fatalf("Default does not validate:\n%v", err)
	}
	assets, _, _ := setAssetEnv(t)
	fromContract, err := Parse("contract.toml", []byte(schemaContract), nil)
	if err != nil {
		t.Fatal(err)
	}
	fromEmpty, err := Parse("empty.toml", nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(fromContract, fromEmpty) {
		t.Errorf("Default differs from the schema contract:\ncontract %+v\ndefault  %+v", fromContract, fromEmpty)
	}
	if want := assets + "/stories260K/stories260K.bin"; fromEmpty.Model.Path != want {
		t.Errorf("model.path = %q, want %q", fromEmpty.Model.Path, want)
	}
}

func TestPresetsLoadAndValidate(t *testing.T) {
	assets, model, aux := setAssetEnv(t)
	if got, want := Presets(), []string{"gsm8k.toml", "mmlu.toml", "quickstart.toml"}; !slices.Equal(got, want) {
		t.Fatalf("Presets() = %v, want %v", got, want)
	}
	check := map[string]func(c *Config) bool{
		"quickstart.toml": func(c *Config) bool {
			return c.Method == MethodSALR && c.Adapters.LoRARank == 8 && c.Adapters.SVDRank == 8 &&
				c.Train.LR == 1e-3 && c.Train.MaxSteps == 300 && c.Train.EvalEvery == 50 &&
				c.Model.Path == assets+"/stories260K/stories260K.bin" && c.Data.TrainPath == assets+"/gsm8k/train.jsonl"
		},
		"gsm8k.toml": func(c *Config) bool {
			return c.Method == MethodSALR && c.Adapters.LoRARank == 64 && c.Adapters.SVDRank == 64 &&
				c.Model.Path == model && c.Data.Format == FormatMetaMathQA && c.Sparsity.Ratio == 0.5 &&
				c.Data.TrainPath == filepath.Join(filepath.Dir(aux), "MetaMathQA-395K.json") &&
				c.Sparsity.Pattern == PatternMatrix && c.Eval.Task == TaskGSM8K
		},
		"mmlu.toml": func(c *Config) bool {
			return c.Adapters.LoRARank == 64 && c.Model.Path == model && c.Data.Format == FormatMMLU &&
				c.Data.TrainPath == aux && c.Eval.Task == TaskMMLU && c.Eval.Shots == 5
		},
	}
	for _, name := range Presets() {
		for _, spelling := range []string{name, strings.TrimSuffix(name, ".toml")} {
			c, err := Load(spelling, nil)
			if err != nil {
				t.Errorf("Load(%q): %v", spelling, err)
				continue
			}
			if ok := check[name]; ok == nil || !ok(c) {
				t.Errorf("Load(%q) gave unexpected values: %+v", spelling, c)
			}
		}
	}
}

func TestPresetFilesMatchEmbedded(t *testing.T) {
	for _, name := range Presets() {
		onDisk, err := os.ReadFile(name)
		if err != nil {
			t.Fatal(err)
		}
		embedded, canonical, ok := ReadPreset(strings.TrimSuffix(name, ".toml"))
		if !ok || canonical != name || string(embedded) != string(onDisk) {
			t.Errorf("ReadPreset(%q) = %q, %v; want the file's text", name, canonical, ok)
		}
	}
	if _, _, ok := ReadPreset("../go.mod"); ok {
		t.Error("ReadPreset accepted a path outside the configs directory")
	}
}

func TestLoadPrefersFileOnDisk(t *testing.T) {
	setAssetEnv(t)
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "quickstart.toml"), []byte("[train]\nlr = 0.5\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	t.Chdir(dir)
	c, err := Load("quickstart.toml", nil)
	if err != nil {
		t.Fatal(err)
	}
	if c.Train.LR != 0.5 || c.Adapters.LoRARank != Default().Adapters.LoRARank {
		t.Errorf("Load used the preset, not the file on disk: lr=%v rank=%d", c.Train.LR, c.Adapters.LoRARank)
	}
	// The preset is still reachable under its bare name.
	if c, err := Load("gsm8k", nil); err != nil || c.Adapters.LoRARank != 64 {
		t.Errorf("Load(gsm8k) = %v, %v", c, err)
	}
}

func TestLoadMissing(t *testing.T) {
	_, err := Load("no-such-config.toml", nil)
	if err == nil || !strings.Contains(err.Error(), "no-such-config.toml") || !strings.Contains(err.Error(), "gsm8k.toml") {
		t.Errorf("error %v should name the config and list the presets", err)
	}
	_, err = Load(t.TempDir(), nil)
	if err == nil || !strings.Contains(err.Error(), "directory") {
		t.Errorf("loading a directory: %v", err)
	}
	_, err = Load("sweeps/README", nil)
	if err == nil {
		t.Error("Load accepted a file of the sweeps directory as a run config")
	}
}

// TestErrorsNameKeyAndLine feeds broken documents and checks that the
// message names the file, the line and the key.
func TestErrorsNameKeyAndLine(t *testing.T) {
	setAssetEnv(t)
	tests := []struct {
		name, src string
		want      []string
	}{
		{"syntax", "method = \"salr\"\n[train]\nlr = = 1\n", []string{"t.toml:3:6: syntax error"}},
		{"unterminated string", "[data]\nformat = \"gsm8k\n", []string{"t.toml:2:"}},
		{"duplicate key", "[train]\nlr = 1.0\nlr = 2.0\n", []string{"t.toml:3:", "syntax error"}},
		{"unknown top-level key", "methd = \"salr\"\n", []string{"t.toml:1: methd: unknown key (did you mean method?)"}},
		{"unknown nested key", "[train]\nlr = 1e-4\nlrr = 1\n", []string{"t.toml:3: train.lrr: unknown key (did you mean train.lr?)"}},
		{"unknown section", "\n[trainer]\nlr = 1\n", []string{"t.toml:2: trainer: unknown key (did you mean train?)"}},
		{"unknown subtable", "[train.extra]\nx = 1\n", []string{"t.toml:1: train.extra: unknown key"}},
		{"key in the wrong section", "[train]\nseq_len = 128\n", []string{"t.toml:2: train.seq_len: unknown key (did you mean data.seq_len?)"}},
		{"wrong type string for float", "[train]\n\nlr = \"fast\"\n", []string{`t.toml:3: train.lr: expected a float, got string "fast"`}},
		{"float for integer", "[train]\nmax_steps = 1.5\n", []string{"t.toml:2: train.max_steps: expected an integer, got float 1.5"}},
		{"string for list", "[adapters]\ntarget_modules = \"q_proj\"\n", []string{`t.toml:2: adapters.target_modules: expected an array of strings, got string "q_proj"`}},
		{"list element type", "[adapters]\ntarget_modules = [\"q_proj\", 3]\n", []string{"t.toml:2: adapters.target_modules: expected an array of strings, element 1 is integer 3"}},
		{"scalar for section", "train = 5\n", []string{"t.toml:1: train: expected a table, got integer 5"}},
		{"array of tables for section", "[[train]]\nlr = 1.0\n", []string{"t.toml:1: train: expected a table, got an array of tables"}},
		{"datetime", "[train]\nseed = 1979-05-27\n", []string{"t.toml:2: train.seed: expected an integer, got a datetime"}},
		{"lr zero", "[train]\nlr = 0.0\n", []string{"t.toml:2: train.lr: must be > 0, got 0"}},
		{"lr nan", "[train]\nlr = nan\n", []string{"t.toml:2: train.lr: must be > 0, got NaN"}},
		{"lr inf", "[train]\nlr = inf\n", []string{"t.toml:2: train.lr: must be > 0, got +Inf"}},
		{"ratio one", "[sparsity]\nratio = 1\n", []string{"t.toml:2: sparsity.ratio: must be in (0, 1), got 1"}},
		{"bad N:M", "[sparsity]\npattern = \"4:2\"\n", []string{"t.toml:2: sparsity.pattern:", "0 < N < M"}},
		{"bad pattern", "[sparsity]\npattern = \"2-4\"\n", []string{"t.toml:2: sparsity.pattern:", `got "2-4"`}},
		{"N:M ratio mismatch", "[sparsity]\npattern = \"1:4\"\n", []string{`sparsity.ratio: must be 0.75 (1 - N/M) with pattern "1:4", got 0.5 (built-in default`}},
		{"unknown enum", "method = \"dora\"\n", []string{`t.toml:1: method: must be one of "lora", "prune-lora", "salr", "prune", "prune-svd", "lora-prune", "lora-prune-dynamic", "qlora", got "dora"`}},
		{"svd rank for salr", "[adapters]\nsvd_rank = 0\n", []string{"t.toml:2: adapters.svd_rank: must be >= 1 for method salr, got 0"}},
		{"lora rank for prune-lora", "method = \"prune-lora\"\n[adapters]\nlora_rank = 0\n", []string{"t.toml:3: adapters.lora_rank: must be >= 1 for method prune-lora"}},
		{"seq_len", "[data]\nseq_len = 1\n", []string{"t.toml:2: data.seq_len: must be >= 2, got 1"}},
		{"unknown projection", "[sparsity]\ntarget_modules = [\"qproj\"]\n", []string{`t.toml:2: sparsity.target_modules: unknown projection "qproj"`}},
		{"empty projection list", "[adapters]\ntarget_modules = []\n", []string{"t.toml:2: adapters.target_modules: must list at least one"}},
		{"duplicate projection", "[adapters]\ntarget_modules = [\"q_proj\", \"q_proj\"]\n", []string{`"q_proj" listed twice`}},
		{"held out >= max", "[data]\nmax_examples = 100\neval_examples = 100\n", []string{"t.toml:3: data.eval_examples: must be smaller than data.max_examples (100)"}},
		{"jsonl fields equal", "[data]\nformat = \"jsonl\"\nprompt_field = \"text\"\nresponse_field = \"text\"\n", []string{"t.toml:4: data.response_field: must differ"}},
		{"types without metamathqa", "[data]\ntypes = [\"GSM_SV\"]\n", []string{`t.toml:2: data.types: selects MetaMathQA types and needs data.format = "metamathqa", got data.format = "gsm8k"`}},
		{"duplicate type", "[data]\nformat = \"metamathqa\"\ntypes = [\"GSM_SV\", \"GSM_SV\"]\n", []string{`t.toml:3: data.types: "GSM_SV" listed twice`}},
		{"empty type", "[data]\nformat = \"metamathqa\"\ntypes = [\"GSM_SV\", \" \"]\n", []string{"t.toml:3: data.types: entry 2 is empty"}},
		{"dotted key", "train.lr = -1.0\n", []string{"t.toml:1: train.lr: must be > 0"}},
		{"inline table", "\ntrain = { lr = -1.0 }\n", []string{"t.toml:2: train.lr: must be > 0"}},
		{"multi-line array shifts lines", "[adapters]\ntarget_modules = [\n  \"q_proj\",\n  \"v_proj\",\n]\nlora_rank = -1\n",
			[]string{"t.toml:6: adapters.lora_rank: must be >= 0"}},
		{"brackets and '=' inside strings", "[data]\nprompt_field = \"[train] lr = 5 # x\"\nseq_len = 1\n", []string{"t.toml:3: data.seq_len"}},
		{"table header inside a multi-line string", "[data]\nprompt_field = \"\"\"\n[train]\nseq_len = 1\n\"\"\"\nseq_len = 1\n",
			[]string{"t.toml:6: data.seq_len"}},
		{"unset variable", "[model]\npath = \"${SALR_TEST_UNSET_VAR}/m.bin\"\n", []string{"t.toml:2: model.path: environment variable SALR_TEST_UNSET_VAR is not set"}},
		{"all problems at once", "[train]\nlr = -1.0\nbatch_size = 0\n", []string{"t.toml:2: train.lr", "t.toml:3: train.batch_size"}},
		{"decoding and range problems at once", "[train]\nlr = -1.0\nbatch_size = \"8\"\n", []string{"t.toml:2: train.lr: must be > 0", "t.toml:3: train.batch_size: expected an integer"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Parse("t.toml", []byte(tc.src), nil)
			if err == nil {
				t.Fatal("no error")
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error\n%v\ndoes not contain %q", err, w)
				}
			}
		})
	}
}

func TestErrorsAreFieldErrors(t *testing.T) {
	setAssetEnv(t)
	src := "[train]\nbatch_size = 0\nlr = -1.0\nlog_every = \"x\"\n"
	sets := []string{"train.threads=-1", "train.max_steps=1.5"}
	_, err := Parse("t.toml", []byte(src), sets)
	var errs Errors
	if !errors.As(err, &errs) || len(errs) != 5 {
		t.Fatalf("want Errors with 5 entries, got %v", err)
	}
	// Reported in the order of the input (file lines, then -set flags, then
	// defaults), whatever the order of the checks.
	want := []FieldError{
		{Origin: "t.toml:2", Key: "train.batch_size", Msg: "must be >= 1, got 0"},
		{Origin: "t.toml:3", Key: "train.lr", Msg: "must be > 0, got -1"},
		{Origin: "t.toml:4", Key: "train.log_every", Msg: `expected an integer, got string "x"`},
		{Origin: "-set train.threads=-1", Key: "train.threads", Msg: "must be >= 0, got -1"},
		{Origin: "-set train.max_steps=1.5", Key: "train.max_steps", Msg: "expected an integer, got float 1.5"},
	}
	for i := range want {
		if *errs[i] != want[i] {
			t.Errorf("error %d = %+v, want %+v", i, *errs[i], want[i])
		}
	}
	var fe *FieldError
	if !errors.As(err, &fe) || fe.Key != "train.batch_size" {
		t.Errorf("errors.As(*FieldError) = %v", fe)
	}
}

func TestDefaultValueErrorSaysSo(t *testing.T) {
	unsetEnv(t, "SALR_ASSETS")
	_, err := Parse("t.toml", nil, nil)
	if err == nil {
		t.Fatal("no error with SALR_ASSETS unset")
	}
	for _, w := range []string{"model.path: environment variable SALR_ASSETS is not set", "built-in default", "data.train_path"} {
		if !strings.Contains(err.Error(), w) {
			t.Errorf("error\n%v\ndoes not contain %q", err, w)
		}
	}
}

func TestSetOverrides(t *testing.T) {
	setAssetEnv(t)
	tests := []struct {
		sets []string
		got  func(c *Config) any
		want any
	}{
		{[]string{"train.lr=1e-4"}, func(c *Config) any { return c.Train.LR }, 1e-4},
		{[]string{"train.lr=3"}, func(c *Config) any { return c.Train.LR }, 3.0},
		{[]string{"method=lora"}, func(c *Config) any { return c.Method }, "lora"},
		{[]string{`method="prune"`}, func(c *Config) any { return c.Method }, "prune"},
		{[]string{"model.path=/x/y"}, func(c *Config) any { return c.Model.Path }, "/x/y"},
		{[]string{`adapters.target_modules=["q_proj","v_proj"]`}, func(c *Config) any { return c.Adapters.TargetModules }, []string{"q_proj", "v_proj"}},
		{[]string{"adapters.target_modules=q_proj"}, func(c *Config) any { return c.Adapters.TargetModules }, []string{"q_proj"}},
		{[]string{"adapters.target_modules=q_proj, v_proj"}, func(c *Config) any { return c.Adapters.TargetModules }, []string{"q_proj", "v_proj"}},
		{[]string{"adapters.target_modules=[q_proj,v_proj]"}, func(c *Config) any { return c.Adapters.TargetModules }, []string{"q_proj", "v_proj"}},
		{[]string{`adapters.target_modules=["q_proj", 'v_proj']`}, func(c *Config) any { return c.Adapters.TargetModules }, []string{"q_proj", "v_proj"}},
		{[]string{"sparsity.pattern=2:4"}, func(c *Config) any { return c.Sparsity.Pattern }, "2:4"},
		{[]string{"output.dir=2024"}, func(c *Config) any { return c.Output.Dir }, "2024"},
		{[]string{"output.dir= runs/x "}, func(c *Config) any { return c.Output.Dir }, "runs/x"},
		{[]string{"data.eval_path="}, func(c *Config) any { return c.Data.EvalPath }, ""},
		{[]string{"train.seed=-7"}, func(c *Config) any { return c.Train.Seed }, int64(-7)},
		{[]string{"adapters.rslora=true"}, func(c *Config) any { return c.Adapters.RSLoRA }, true},
		{[]string{"train={lr=0.5, max_steps=3}"}, func(c *Config) any { return [2]any{c.Train.LR, c.Train.MaxSteps} }, [2]any{0.5, 3}},
		{[]string{"train.lr=0.1", "train.lr=0.2"}, func(c *Config) any { return c.Train.LR }, 0.2},
		{[]string{" train.max_steps = 7 "}, func(c *Config) any { return c.Train.MaxSteps }, 7},
		{[]string{"data.format=metamathqa", "data.types=GSM_AnsAug,MATH_SV"}, func(c *Config) any { return c.Data.Types }, []string{"GSM_AnsAug", "MATH_SV"}},
		{[]string{"data.format=metamathqa", "data.types="}, func(c *Config) any { return c.Data.Types }, []string{}},
	}
	for _, tc := range tests {
		c, err := Parse("t.toml", nil, tc.sets)
		if err != nil {
			t.Errorf("sets %q: %v", tc.sets, err)
			continue
		}
		if got := tc.got(c); !reflect.DeepEqual(got, tc.want) {
			t.Errorf("sets %q: got %#v, want %#v", tc.sets, got, tc.want)
		}
	}
}

func TestSetErrorsNameTheFlag(t *testing.T) {
	setAssetEnv(t)
	tests := []struct {
		src  string
		sets []string
		want string
	}{
		{"", []string{"train.lrr=1"}, "-set train.lrr=1: train.lrr: unknown key (did you mean train.lr?)"},
		{"", []string{"trian.lr=1"}, "-set trian.lr=1: trian: unknown key (did you mean train?)"},
		{"", []string{"train.lr"}, "-set train.lr: expected KEY=VALUE"},
		{"", []string{"=1"}, "-set =1: expected KEY=VALUE"},
		{"", []string{"train..lr=1"}, "-set train..lr=1: train..lr: malformed key"},
		{"", []string{"train.lr=abc"}, `-set train.lr=abc: train.lr: "abc" is not a valid float`},
		{"", []string{"train.lr=0"}, "-set train.lr=0: train.lr: must be > 0, got 0"},
		{"", []string{"train.max_steps=99999999999999999999"}, `train.max_steps: "99999999999999999999" is not a valid integer (`},
		{"", []string{"model.path=\xff"}, "VALUE is not valid UTF-8"},
		// A later -set wins over the file, and the error names the -set.
		{"[train]\nlr = 1.0\n", []string{"train.lr=-2"}, "-set train.lr=-2: train.lr: must be > 0"},
		// A file error and a -set error are both reported.
		{"[train]\nlrr = 1.0\n", []string{"train.seq_len=1"}, "t.toml:2: train.lrr: unknown key (did you mean train.lr?)\n-set train.seq_len=1: train.seq_len: unknown key (did you mean data.seq_len?)"},
	}
	for _, tc := range tests {
		_, err := Parse("t.toml", []byte(tc.src), tc.sets)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("sets %q: error\n%v\nwant it to contain %q", tc.sets, err, tc.want)
		}
	}
}

func TestEnvExpansion(t *testing.T) {
	env := map[string]string{"A": "va", "A_B": "vab", "EMPTY": ""}
	lookup := func(k string) (string, bool) { v, ok := env[k]; return v, ok }
	good := map[string]string{
		"plain":         "plain",
		"${A}/x":        "va/x",
		"$A/x":          "va/x",
		"$A_B.bin":      "vab.bin",
		"${A}_B":        "va_B",
		"$$A":           "$A",
		"a$$":           "a$",
		"$${A}":         "${A}",
		"x${EMPTY}y":    "xy",
		"${A}${A}":      "vava",
		"ünï/${A}/ç":    "ünï/va/ç",
		"$$$A":          "$va",
		"/p/${A}/q/$A/": "/p/va/q/va/",
	}
	for in, want := range good {
		got, err := expandEnv(in, lookup)
		if err != nil || got != want {
			t.Errorf("expandEnv(%q) = %q, %v; want %q", in, got, err, want)
		}
		if back, err := expandEnv(escapeEnv(got), lookup); err != nil || back != got {
			t.Errorf("escapeEnv(%q) does not expand back: %q, %v", got, back, err)
		}
	}
	bad := map[string]string{
		"${A":      "unterminated",
		"${1A}":    "bad variable name",
		"${}":      "bad variable name",
		"$/x":      "write $$",
		"x$":       "write $$",
		"${NOPE}":  "NOPE is not set",
		"$NOPE/x":  "NOPE is not set",
		"${A-def}": "bad variable name",
		"$A_":      "A_ is not set",
	}
	for in, want := range bad {
		if _, err := expandEnv(in, lookup); err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("expandEnv(%q) error = %v, want it to mention %q", in, err, want)
		}
	}
}

func TestLoadExpandsOnlyPathFields(t *testing.T) {
	setAssetEnv(t)
	t.Setenv("SALR_TEST_DIR", "/data")
	src := "[data]\ntrain_path = \"$SALR_TEST_DIR/train.jsonl\"\nprompt_field = \"${SALR_TEST_DIR}\"\n[output]\ndir = \"runs/$$literal\"\n"
	c, err := Parse("t.toml", []byte(src), []string{"model.path=${SALR_TEST_DIR}/m"})
	if err != nil {
		t.Fatal(err)
	}
	if c.Data.TrainPath != "/data/train.jsonl" || c.Model.Path != "/data/m" || c.Output.Dir != "runs/$literal" {
		t.Errorf("paths not expanded: %q %q %q", c.Data.TrainPath, c.Model.Path, c.Output.Dir)
	}
	if c.Data.PromptField != "${SALR_TEST_DIR}" {
		t.Errorf("a non-path field was expanded: %q", c.Data.PromptField)
	}
}

func TestMethodHelpers(t *testing.T) {
	tests := []struct {
		method                    string
		trains, prunes, lora, svd bool
		steps                     int
		svdRankZeroOK, loraZeroOK bool
	}{
		{MethodLoRA, true, false, true, false, 300, true, false},
		{MethodPruneLoRA, true, true, true, false, 300, true, false},
		{MethodSALR, true, true, true, true, 300, false, false},
		{MethodPrune, false, true, false, false, 0, true, true},
		{MethodPruneSVD, false, true, false, true, 0, false, true},
	}
	for _, tc := range tests {
		c := Default()
		c.Method = tc.method
		if c.Trains() != tc.trains || c.Prunes() != tc.prunes || c.HasLoRA() != tc.lora || c.HasSVDAdapter() != tc.svd || c.Steps() != tc.steps {
			t.Errorf("%s: trains=%v prunes=%v lora=%v svd=%v steps=%d", tc.method, c.Trains(), c.Prunes(), c.HasLoRA(), c.HasSVDAdapter(), c.Steps())
		}
		c.Adapters.SVDRank = 0
		if ok := c.Validate() == nil; ok != tc.svdRankZeroOK {
			t.Errorf("%s with svd_rank 0: valid=%v, want %v", tc.method, ok, tc.svdRankZeroOK)
		}
		c = Default()
		c.Method = tc.method
		c.Adapters.LoRARank = 0
		if ok := c.Validate() == nil; ok != tc.loraZeroOK {
			t.Errorf("%s with lora_rank 0: valid=%v, want %v", tc.method, ok, tc.loraZeroOK)
		}
	}
	// lora does not prune, so an N:M pattern inconsistent with the ratio is ignored.
	c := Default()
	c.Method, c.Sparsity.Pattern = MethodLoRA, "1:4"
	if err := c.Validate(); err != nil {
		t.Errorf("lora with pattern 1:4 and ratio 0.5: %v", err)
	}
	c.Sparsity.Ratio = 0.75
	c.Method = MethodSALR
	if err := c.Validate(); err != nil {
		t.Errorf("salr with pattern 1:4 and ratio 0.75: %v", err)
	}
}

func TestNMAndModules(t *testing.T) {
	for pattern, want := range map[string][3]int{"2:4": {2, 4, 1}, "4:8": {4, 8, 1}, "1:16": {1, 16, 1},
		"matrix": {}, "4:4": {}, "0:4": {}, "+2:4": {}, "2:": {}, " 2:4": {}, "2:4:8": {}} {
		n, m, ok := SparsityConfig{Pattern: pattern}.NM()
		got := [3]int{n, m, 0}
		if ok {
			got[2] = 1
		}
		if got != want {
			t.Errorf("NM(%q) = %v, want %v", pattern, got, want)
		}
	}
	if got := ExpandModules([]string{"down_proj", "q_proj", "q_proj"}); !slices.Equal(got, []string{"q_proj", "down_proj"}) {
		t.Errorf("ExpandModules = %v", got)
	}
	if got := ExpandModules([]string{AllLinear}); !slices.Equal(got, ProjectionNames()) || len(got) != 7 {
		t.Errorf("ExpandModules(all-linear) = %v", got)
	}
}

func TestEvalDataPathFor(t *testing.T) {
	t.Setenv("SALR_ASSETS", "/assets")
	if p, err := (EvalConfig{}).DataPathFor(TaskMMLU); err != nil || p != "/assets/mmlu" {
		t.Errorf("default = %q, %v", p, err)
	}
	if p, err := (EvalConfig{DataPath: "/d"}).DataPathFor(TaskMMLU); err != nil || p != "/d" {
		t.Errorf("explicit = %q, %v", p, err)
	}
	unsetEnv(t, "SALR_ASSETS")
	if _, err := (EvalConfig{}).DataPathFor(TaskGSM8K); err == nil || !strings.Contains(err.Error(), "SALR_ASSETS") {
		t.Errorf("unset SALR_ASSETS: %v", err)
	}
}

func TestCheckPaths(t *testing.T) {
	dir := t.TempDir()
	file := filepath.Join(dir, "train.jsonl")
	if err := os.WriteFile(file, []byte("{}\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	c := Default()
	c.Model.Path, c.Data.TrainPath = dir, file
	if err := c.CheckPaths(); err != nil {
		t.Errorf("existing paths: %v", err)
	}
	c.Data.Format = FormatMMLU
	c.Model.Tokenizer = filepath.Join(dir, "missing.json")
	err := c.CheckPaths()
	if err == nil || !strings.Contains(err.Error(), "data.train_path: "+file+" is a file; want a directory") ||
		!strings.Contains(err.Error(), "model.tokenizer: ") {
		t.Errorf("CheckPaths = %v", err)
	}
	c = Default()
	c.Model.Path, c.Data.TrainPath, c.Data.EvalPath = file, dir, file
	if err := c.CheckPaths(); err == nil || !strings.Contains(err.Error(), "data.train_path: "+dir+" is a directory") {
		t.Errorf("gsm8k train_path directory: %v", err)
	}
}

func TestFormatNumbers(t *testing.T) {
	for x, want := range map[float64]string{0.5: "0.5", 1: "1.0", 1e-8: "1e-08", 2e21: "2e+21", -3: "-3.0", math.Inf(-1): "-inf"} {
		if got := formatFloat(x); got != want {
			t.Errorf("formatFloat(%v) = %q, want %q", x, got, want)
		}
	}
}

// TestBaseFormatAliases checks that the old spellings of output.base_format
// are read as the current ones, with a note naming where they were written,
// so that the effective config and its hash use the current spelling.
func TestBaseFormatAliases(t *testing.T) {
	setAssetEnv(t)
	for old, current := range map[string]string{"dense-f32": "dense-fp32", "bitmap-f32": "bitmap-fp32", "bitmap-f16": "bitmap-fp16"} {
		want, err := Parse("t.toml", []byte("[output]\nbase_format = \""+current+"\"\n"), nil)
		if err != nil {
			t.Fatalf("%s: %v", current, err)
		}
		if len(want.Notes) != 0 {
			t.Errorf("%s: notes %q", current, want.Notes)
		}
		fromFile, err := Parse("t.toml", []byte("method = \"salr\"\n[output]\nbase_format = \""+old+"\"\n"), nil)
		if err != nil {
			t.Fatalf("%s in a file: %v", old, err)
		}
		fromSet, err := Parse("t.toml", nil, []string{"output.base_format=" + old})
		if err != nil {
			t.Fatalf("-set %s: %v", old, err)
		}
		for origin, c := range map[string]*Config{"t.toml:3": fromFile, "-set output.base_format=" + old: fromSet} {
			if c.Output.BaseFormat != current || c.Hash() != want.Hash() {
				t.Errorf("%s (%s): read as %q, hash %s; want %q, hash %s", old, origin, c.Output.BaseFormat, c.Hash(), current, want.Hash())
			}
			if len(c.Notes) != 1 || !strings.HasPrefix(c.Notes[0], origin+": output.base_format:") ||
				!strings.Contains(c.Notes[0], `"`+old+`" is the old spelling of "`+current+`"`) {
				t.Errorf("%s (%s): notes %q", old, origin, c.Notes)
			}
			if text, _ := c.MarshalTOML(); !strings.Contains(string(text), `base_format = "`+current+`"`) {
				t.Errorf("%s (%s): effective config says\n%s", old, origin, text)
			}
		}
	}
}

// TestLoadPrintable loads the gsm8k preset without the variables it uses:
// its paths print as written and, once the variables are set, the printed
// text loads to the same config as the preset. Set variables are expanded.
func TestLoadPrintable(t *testing.T) {
	unsetEnv(t, "SALR_MODEL")
	unsetEnv(t, "SALR_ASSETS")
	unsetEnv(t, "SALR_METAMATHQA")
	if _, err := Load("gsm8k.toml", nil); err == nil {
		t.Fatal("Load expanded ${SALR_MODEL} although it is not set")
	}
	t.Setenv("SALR_MMLU_AUX", "/a$b")
	c, err := LoadPrintable("gsm8k.toml", []string{"data.eval_path=$$HOME/x", "model.tokenizer=${SALR_MMLU_AUX}/t"})
	if err != nil {
		t.Fatal(err)
	}
	text, err := c.MarshalTOML()
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{`path = "${SALR_MODEL}"`, `train_path = "${SALR_METAMATHQA}/MetaMathQA-395K.json"`, `eval_path = "$$HOME/x"`,
		`tokenizer = "/a$$b/t"`} {
		if !strings.Contains(string(text), want) {
			t.Errorf("printed config lacks %s:\n%s", want, text)
		}
	}
	_, model, _ := setAssetEnv(t)
	printed, err := Parse("printed.toml", text, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Setenv("SALR_MMLU_AUX", "/a$b")
	preset, err := Load("gsm8k.toml", []string{"data.eval_path=$$HOME/x", "model.tokenizer=${SALR_MMLU_AUX}/t"})
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(printed, preset) || printed.Model.Path != model {
		t.Errorf("the printed config loads to\n%+v\nthe preset to\n%+v", printed, preset)
	}
	if _, err := LoadPrintable("gsm8k.toml", []string{"model.path=${BAD"}); err == nil || !strings.Contains(err.Error(), "unterminated") {
		t.Errorf("a malformed variable reference: %v", err)
	}
}
