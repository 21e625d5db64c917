package sweep

import (
	"slices"
	"testing"

	"github.com/salr-go/salr/configs"
)

// FuzzParse feeds arbitrary text to the sweep parser: it must return a
// sweep or errors naming the file, never panic, and a parsed sweep's
// points must assign only its varied keys.
func FuzzParse(f *testing.F) {
	for _, name := range []string{"sweeps/sparsity.toml", "sweeps/rank.toml"} {
		data, _, ok := configs.ReadPreset(name)
		if !ok {
			f.Fatalf("no preset %s", name)
		}
		f.Add(data)
	}
	f.Add([]byte("name = \"r\"\nbase = \"q\"\n[random]\ncount = 3\n\"train.lr\" = {min = 1e-4, max = 1e-2, log = true}\nx.y = [1]\n"))
	f.Add([]byte("name = \"x\"\nbase = \"q\"\n[[runs]]\nmethod = \"lora\"\n[[runs]]\n[runs.sparsity]\nratio = 0.2\n"))
	f.Add([]byte("a = \"\"\"\n[grid]\n\"\"\"\n[grid]\n'k' = [ # c\n]\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		configs.KeyDefs(string(data))
		s, err := Parse("f.toml", data, "", nil)
		if err != nil {
			ce, ok := err.(configs.Errors)
			if !ok || len(ce) == 0 {
				t.Fatalf("error %T %v is not a non-empty configs.Errors", err, err)
			}
			for _, e := range ce {
				if e.Origin == "" || e.Origin[0] != 'f' {
					t.Fatalf("error without the file: %v", e)
				}
			}
			return
		}
		for i, point := range s.points {
			for _, a := range point {
				if !slices.Contains(s.Varied, a.key) {
					t.Fatalf("run %d assigns %s, not among %q", i, a.key, s.Varied)
				}
			}
		}
	})
}
