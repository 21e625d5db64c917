package configs

import (
	"embed"
	"io/fs"
	"path"
	"slices"
	"strings"
)

// presetFS holds the preset files of this directory. The sweeps directory
// (sweep presets, read by the sweep runner through ReadPreset) is embedded as
// a whole, so adding files there needs no change here.
//
//go:embed *.toml sweeps
var presetFS embed.FS

// Presets returns the names of the embedded run presets ("gsm8k.toml",
// "mmlu.toml", "quickstart.toml", ...), sorted. Load accepts each of them,
// with or without ".toml".
func Presets() []string {
	entries, err := fs.ReadDir(presetFS, ".")
	if err != nil {
		panic("configs: reading embedded presets: " + err.Error())
	}
	var names []string
	for _, e := range entries {
		if !e.IsDir() && strings.HasSuffix(e.Name(), ".toml") {
			names = append(names, e.Name())
		}
	}
	slices.Sort(names)
	return names
}

// ReadPreset returns the text of an embedded file by its path inside the
// configs directory ("gsm8k.toml", "sweeps/rank.toml"); ".toml" may be left
// out. ok is false when there is no such preset.
func ReadPreset(name string) (data []byte, canonical string, ok bool) {
	canonical = path.Clean(strings.TrimPrefix(name, "./"))
	if !strings.HasSuffix(canonical, ".toml") {
		canonical += ".toml"
	}
	if !fs.ValidPath(canonical) {
		return nil, "", false
	}
	data, err := presetFS.ReadFile(canonical)
	if err != nil {
		return nil, "", false
	}
	return data, canonical, true
}
