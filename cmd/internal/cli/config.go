package cli

import (
	"flag"
	"fmt"
	"io"

	"github.com/salr-go/salr/configs"
)

// ConfigFlags are the flags of a command that runs a training config:
// -config, -set (repeatable) and -print-config.
type ConfigFlags struct {
	Path  string
	Sets  StringList
	Print bool
}

// Register adds the flags to fs; required completes -config's help, e.g.
// "required" or "required unless -resume", and setExample is -set's example.
func (c *ConfigFlags) Register(fs *flag.FlagSet, required, setExample string) {
	fs.StringVar(&c.Path, "config", "", "config file or embedded preset ("+required+")")
	fs.Var(&c.Sets, "set", "override a config key, KEY=VALUE (repeatable), e.g. -set "+setExample)
	fs.BoolVar(&c.Print, "print-config", false, "print the effective config and exit")
}

// Load reads the config with its overrides and writes its notes to stderr,
// prefixed by the command's name. With -print-config it writes the
// effective config to stdout instead (unset ${VAR}s shown as written) and
// returns a nil config.
func (c *ConfigFlags) Load(name string, stdout, stderr io.Writer) (*configs.Config, error) {
	load := configs.Load
	if c.Print {
		load = configs.LoadPrintable
	}
	cfg, err := load(c.Path, c.Sets)
	if err != nil {
		return nil, err
	}
	for _, note := range cfg.Notes {
		fmt.Fprintf(stderr, "%s: note: %s\n", name, note)
	}
	if !c.Print {
		return cfg, nil
	}
	b, err := cfg.MarshalTOML()
	if err != nil {
		return nil, err
	}
	_, err = stdout.Write(b)
	return nil, err
}
