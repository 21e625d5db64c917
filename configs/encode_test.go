package configs

import (
	"math"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
)

// roundTrip marshals c and loads the text back.
func roundTrip(t *testing.T, c *Config) *Config {
	t.Helper()
	text, err := c.MarshalTOML()
	if err != nil {
		t.Fatal(err)
	}
	back, err := Parse("marshalled.toml", text, nil)
	if err != nil {
		t.Fatalf("reloading\n%s\n: %v", text, err)
	}
	again, err := back.MarshalTOML()
	if err != nil || string(again) != string(text) {
		t.Errorf("MarshalTOML is not stable:\n%s\nvs\n%s", text, again)
	}
	return back
}

func TestMarshalRoundTripPresets(t *testing.T) {
	setAssetEnv(t)
	for _, name := range Presets() {
		c, err := Load(name, nil)
		if err != nil {
			t.Fatal(err)
		}
		if back := roundTrip(t, c); !reflect.DeepEqual(back, c) {
			t.Errorf("%s: round trip changed the config:\n%+v\n%+v", name, c, back)
		}
	}
}

func TestMarshalRoundTripOddValues(t *testing.T) {
	setAssetEnv(t)
	c, err := Load("quickstart", nil)
	if err != nil {
		t.Fatal(err)
	}
	c.Model.Tokenizer = `C:\tok "512".bin`
	c.Output.Dir = "runs/$HOME/${X}/$$/ünïcødé\t\x01\x7f"
	c.Data.PromptField = "line1\nline2\r# not a comment"
	c.Data.ResponseField = "'quoted' \"twice\" \\ \u2028"
	c.Data.EvalPath = "a$b"
	c.Train.LR = 1.0 / 3
	c.Train.AdamEps = 5e-324
	c.Train.WeightDecay = 1e300
	c.Train.MinLRRatio = 1
	c.Train.Seed = math.MinInt64
	c.Train.MaxSteps = math.MaxInt32 + 1
	c.Adapters.LoRAAlpha = 7
	c.Adapters.TargetModules = []string{"down_proj", "q_proj"}
	if err := c.Validate(); err != nil {
		t.Fatal(err)
	}
	if back := roundTrip(t, c); !reflect.DeepEqual(back, c) {
		t.Errorf("round trip changed the config:\n%+v\n%+v", c, back)
	}
}

func TestMarshalRejectsInvalidUTF8(t *testing.T) {
	c := Default()
	c.Output.Dir = "\xff"
	if _, err := c.MarshalTOML(); err == nil || !strings.Contains(err.Error(), "output.dir") {
		t.Errorf("MarshalTOML with invalid UTF-8 = %v", err)
	}
}

func TestHash(t *testing.T) {
	a, b := Default(), Default()
	h := a.Hash()
	if len(h) != 12 || strings.Trim(h, "0123456789abcdef") != "" {
		t.Fatalf("Hash() = %q, want 12 hex digits", h)
	}
	if b.Hash() != h {
		t.Error("equal configs hash differently")
	}
	b.Output.Dir = "elsewhere"
	if b.Hash() != h {
		t.Error("output.dir changed the hash")
	}
	b.Train.LR *= 2
	if b.Hash() == h {
		t.Error("a different lr kept the hash")
	}
	c := Default()
	c.Adapters.TargetModules = []string{"q_proj", "v_proj"}
	d := Default()
	d.Adapters.TargetModules = []string{"q_proj,v_proj"}
	if c.Hash() == d.Hash() {
		t.Error("different module lists hash equally")
	}
}

func TestFormatSet(t *testing.T) {
	setAssetEnv(t)
	values := map[string]any{
		"train.lr":                1e-4,
		"train.max_steps":         7,
		"train.seed":              int64(-3),
		"adapters.rslora":         true,
		"method":                  "prune-lora",
		"model.path":              `/x/"q"/y z`,
		"adapters.target_modules": []string{"q_proj", "v_proj"},
		"sparsity.pattern":        "2:4",
		"adapters.lora_alpha":     16,
		"train.threads":           uint8(2),
	}
	for key, v := range values {
		set, err := FormatSet(key, v)
		if err != nil {
			t.Fatal(err)
		}
		c, err := Parse("t.toml", nil, []string{set})
		if err != nil {
			t.Errorf("FormatSet(%s, %v) = %q does not load: %v", key, v, set, err)
			continue
		}
		got := loadSchema().byKey[key].value(c)
		want := reflect.ValueOf(v).Convert(got.Type())
		if !reflect.DeepEqual(got.Interface(), want.Interface()) {
			t.Errorf("FormatSet(%s, %v) = %q loads as %v", key, v, set, got)
		}
	}
	if s, _ := FormatSet("train.lr", 1e-4); s != "train.lr=0.0001" {
		t.Errorf("FormatSet(train.lr, 1e-4) = %q", s)
	}
	for _, bad := range []any{nil, map[string]int{}, uint64(math.MaxUint64), []any{1, struct{}{}}} {
		if s, err := FormatSet("k", bad); err == nil {
			t.Errorf("FormatSet(%#v) = %q, want an error", bad, s)
		}
	}
}

func TestReferenceCoversEveryKey(t *testing.T) {
	ref := Reference()
	rows := strings.Split(strings.TrimSpace(ref), "\n")
	if len(rows) != len(Keys())+2 {
		t.Errorf("reference has %d rows, want a header, a rule and %d keys", len(rows), len(Keys()))
	}
	for _, key := range Keys() {
		if fieldDocs[key] == "" {
			t.Errorf("key %s has no doc", key)
		}
		if rules[key].allowed == "" {
			t.Errorf("key %s has no allowed-values text", key)
		}
		if !strings.Contains(ref, "| `"+key+"` |") {
			t.Errorf("reference lacks key %s", key)
		}
	}
	for key := range rules {
		if loadSchema().byKey[key] == nil {
			t.Errorf("rule for unknown key %s", key)
		}
	}
	for _, want := range []string{
		"| `train.lr` | float | `0.0002` | > 0 | Peak AdamW learning rate, reached after warmup. |",
		"| `sparsity.score` | string | `\"magnitude\"` | \"magnitude\", \"wanda\" | Pruning score: magnitude (\\|W\\|)",
		"| `adapters.target_modules` | array of strings | `[\"all-linear\"]` |",
	} {
		if !strings.Contains(ref, want) {
			t.Errorf("reference lacks %q", want)
		}
	}
	for _, row := range rows {
		// Five cells: six unescaped pipes.
		if n := strings.Count(row, "|") - strings.Count(row, `\|`); n != 6 {
			t.Errorf("row has %d cell separators: %s", n, row)
		}
	}
}

func TestKeyLines(t *testing.T) {
	src := "\ufeff# comment [x]\nmethod = \"salr\" # [y]\n\n[ train ]\nlr = 1.0\n\"max_steps\" = 2\n" +
		"a.b.c = 'lit # ['\nlist = [\n  \"]\",\n  [1, 2],\n]\nafter = 1\n[[runs]]\nx = \"\"\"\n[fake]\ny = 1\"\"\"\nz = '''\n'''\nw = 3\r\n" +
		"[\"quoted.key\".sub]\nk = {a = 1}\n"
	want := map[string]int{
		"method": 2, "train": 4, "train.lr": 5, "train.max_steps": 6, "train.a": 7, "train.a.b": 7, "train.a.b.c": 7,
		"train.list": 8, "train.after": 12, "runs": 13, "runs.x": 14, "runs.z": 17, "runs.w": 19,
		"quoted.key": 20, "quoted.key.sub": 20, "quoted.key.sub.k": 21,
	}
	got := keyLines(src)
	if !reflect.DeepEqual(got, want) {
		t.Errorf("keyLines =\n%v\nwant\n%v", got, want)
	}
	if n := LineOf(got, "quoted.key.sub.k.a"); n != 21 {
		t.Errorf("LineOf(inline table key) = %d, want 21 (the enclosing key)", n)
	}
	if n := LineOf(got, "nowhere"); n != 0 {
		t.Errorf("LineOf(unknown) = %d", n)
	}
}

// TestHashUsesAbsolutePaths checks that a relative and an absolute spelling
// of one path give one hash, and two paths two hashes.
func TestHashUsesAbsolutePaths(t *testing.T) {
	wd, err := os.Getwd()
	if err != nil {
		t.Fatal(err)
	}
	hash := func(path string) string {
		c := Default()
		c.Model.Path = path
		return c.Hash()
	}
	abs := filepath.Join(filepath.Dir(wd), "assets", "m.bin")
	if a, b, c := hash("../assets/m.bin"), hash(abs), hash("./../assets//m.bin"); a != b || a != c {
		t.Errorf("one path, three hashes: %s %s %s", a, b, c)
	}
	if hash("../assets/m.bin") == hash("../other/m.bin") {
		t.Error("two paths, one hash")
	}
}
