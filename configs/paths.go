package configs

import (
	"fmt"
	"os"
)

// pathKind is what a path key must name on disk.
type pathKind int

const (
	anyPath pathKind = iota // a file or a directory
	regularFile
	directory
)

// CheckPaths verifies that the input paths of an expanded config exist and
// have the right kind: model.path, model.tokenizer (when set),
// data.train_path and data.eval_path (files for gsm8k, jsonl and metamathqa,
// directories for mmlu) and eval.data_path (when set and eval.task is set). It returns
// all problems as Errors. Load does not call it, so that configs can be
// loaded, printed and hashed on machines without the data.
func (c *Config) CheckPaths() error {
	var errs Errors
	check := func(key, path string, want pathKind) {
		info, err := os.Stat(path)
		switch {
		case err != nil:
			errs.add("", key, err.Error())
		case want == regularFile && info.IsDir():
			errs.add("", key, fmt.Sprintf("%s is a directory; want a file", path))
		case want == directory && !info.IsDir():
			errs.add("", key, fmt.Sprintf("%s is a file; want a directory", path))
		}
	}
	check("model.path", c.Model.Path, anyPath)
	if c.Model.Tokenizer != "" {
		check("model.tokenizer", c.Model.Tokenizer, anyPath)
	}
	data := regularFile
	if c.Data.Format == FormatMMLU {
		data = directory
	}
	check("data.train_path", c.Data.TrainPath, data)
	if c.Data.EvalPath != "" {
		check("data.eval_path", c.Data.EvalPath, data)
	}
	if c.Eval.Task != "" && c.Eval.DataPath != "" {
		check("eval.data_path", c.Eval.DataPath, anyPath)
	}
	return errs.errOrNil()
}
