package cli

import "flag"

// ModelFlags are the flags of a command that runs a model or a salr-train
// run: -model, -run and -tokenizer.
type ModelFlags struct {
	Model, Run, Tokenizer string
}

// Register adds the flags to fs; runHelp says what the command takes from a
// run directory, e.g. "its pruned base with its trained adapters".
func (m *ModelFlags) Register(fs *flag.FlagSet, runHelp string) {
	fs.StringVar(&m.Model, "model", "", "HF model directory, .gguf file or llama2.c .bin file (required unless -run)")
	fs.StringVar(&m.Run, "run", "", "salr-train run directory: "+runHelp+" (required unless -model)")
	fs.StringVar(&m.Tokenizer, "tokenizer", "", "tokenizer file or directory (default: the model's)")
}

// Check requires exactly one of -model and -run, and -tokenizer only with
// -model.
func (m *ModelFlags) Check() error {
	switch {
	case (m.Model == "") == (m.Run == ""):
		return UsageError("give exactly one of -model and -run")
	case m.Run != "" && m.Tokenizer != "":
		return UsageError("-tokenizer applies to -model only (a run directory holds its tokenizer)")
	}
	return nil
}
