package configs

import (
	"reflect"
	"testing"
)

// FuzzLoad feeds arbitrary bytes as a config file. Parse must never panic,
// and whatever it accepts must survive MarshalTOML and a reload unchanged.
func FuzzLoad(f *testing.F) {
	f.Setenv("SALR_ASSETS", "/assets")
	f.Setenv("SALR_MODEL", "/model")
	f.Setenv("SALR_MMLU_AUX", "/aux")
	for _, name := range Presets() {
		data, _, _ := ReadPreset(name)
		f.Add(data)
	}
	for _, seed := range []string{
		"", "method = \"lora\"\n[train]\nlr = 1\n", "train = { lr = -1.0 }", "[[train]]\n",
		"[adapters]\ntarget_modules = [\n\"q_proj\",\n]\n", "[output]\ndir = \"$$x${SALR_ASSETS}\"\n",
		"[data]\nprompt_field = \"\"\"\n[a]\n\"\"\"\n", "x = 1979-05-27T07:32:00Z", "[train]\nseed = -9223372036854775808\n",
	} {
		f.Add([]byte(seed))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		c, err := Parse("fuzz.toml", data, nil)
		if err != nil {
			if err.Error() == "" {
				t.Fatal("empty error message")
			}
			return
		}
		checkRoundTrip(t, c)
	})
}

// FuzzSet feeds arbitrary -set arguments.
func FuzzSet(f *testing.F) {
	f.Setenv("SALR_ASSETS", "/assets")
	for _, seed := range []string{"train.lr=1e-4", "method=lora", "model.path=/x/y", `adapters.target_modules=["q_proj","v_proj"]`,
		"adapters.target_modules=[q_proj,v_proj]", "train={lr=1.0}", "=", "a..b=1", "sparsity.pattern=2:4", "output.dir=$$"} {
		f.Add(seed)
	}
	f.Fuzz(func(t *testing.T, set string) {
		c, err := Parse("empty.toml", nil, []string{set})
		if err != nil {
			return
		}
		checkRoundTrip(t, c)
	})
}

func checkRoundTrip(t *testing.T, c *Config) {
	t.Helper()
	text, err := c.MarshalTOML()
	if err != nil {
		t.Fatalf("accepted config does not marshal: %v", err)
	}
	back, err := Parse("marshalled.toml", text, nil)
	if err != nil {
		t.Fatalf("marshalled config does not reload: %v\n%s", err, text)
	}
	if !reflect.DeepEqual(back, c) {
		t.Fatalf("round trip changed the config:\n%+v\n%+v", c, back)
	}
}
