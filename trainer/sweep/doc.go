// Package sweep runs experiment sweeps: a sweep file names a base config
// and the keys to vary, Expand turns it into numbered, fully resolved runs,
// and the runs execute locally (RunLocal: N at a time, each in its own
// worker process, skipping finished runs and resuming interrupted ones) or
// on a cluster engine the user already has (EmitSlurm: a job array;
// EmitK8s: an Indexed Job), whose workers execute one run each (Execute).
// With EmitOptions.Ranks > 1 each run is one MPI job of that many ranks
// (srun --mpi=pmix in the array task; one Kubeflow MPIJob per run).
// Collect gathers the runs' summaries and evaluation metrics into one table
// (CSV, Markdown) and a plot of the objective; when train.seed is varied,
// the runs that differ only in it are also summarised as mean ± standard
// deviation (Group), and the plot draws the means with error bars.
//
// A sweep file is TOML:
//
//	name = "sparsity"            # runs go to <root>/<name>/<index>-<hash>/
//	base = "quickstart.toml"     # a config file (relative to the sweep file) or preset
//	root = "runs/sweeps"         # output root, relative to the working directory; ${VAR} expands
//	set = ["train.max_steps=60"] # overrides every run shares (as salr-train -set)
//
//	[objective]
//	metric = "eval_loss"         # a numeric summary.json field, or "eval.<metric>"
//	direction = "minimize"       # or "maximize"
//
//	[plot]                       # optional: the objective plot's axes
//	x = "trainable_params"       # a varied key or a numeric summary.json field (default: the first varied key)
//	lines = "method"             # a varied key, one line per value (default: the second)
//
//	[eval]                       # optional: eval.* config keys, evaluated after training
//	task = "gsm8k"
//	shots = 0
//	limit = 50
//
//	[grid]                       # the cartesian product, the first key outermost
//	"sparsity.ratio" = [0.1, 0.3, 0.5]
//	method = ["lora", "salr"]
//
// Instead of [grid], a file has [random] (count, seed, and per key a list
// of values or a table {min, max, log, int}; run i draws from a generator
// seeded by (seed, i), so raising count keeps the earlier runs) or [[runs]]
// tables of explicit key = value pairs; [[runs]] may come with a [grid],
// and then every run executes at every grid point (each method under
// several train.seed values, say). Keys are config keys
// (configs/REFERENCE.md); quoted ("sparsity.ratio") and dotted
// (sparsity.ratio) spellings are the same key. output.dir is set per run.
//
// Expansion is deterministic: run i is the base config, then set, then
// [eval], then command-line -set overrides, then its varied values, and its
// directory is named after configs.Config.Hash of the result (which covers
// expanded paths such as ${SALR_ASSETS}, made absolute, so workers need the
// same directories but not the same spelling of them). Runs that the method makes identical (lora ignores the
// sparsity section) are kept, not deduplicated: they cost time but show
// that the method's result does not depend on the ignored key.
//
// A sweep's directory holds sweep.json (the manifest -collect reads) and
// one directory per run with the trainer's files (config.toml,
// summary.json, metrics.jsonl, checkpoints/, eval/results.json when the
// config names an evaluation, ...), plus log.txt (a local worker's output).
package sweep
