// Command salr-sweep runs experiment sweeps (grids, random searches or
// explicit lists of runs over config keys) on this machine, or writes a
// Slurm job array script or a Kubernetes Indexed Job manifest that runs
// them on a cluster, and collects the results into one table and a plot.
//
//	salr-sweep -config sweeps/sparsity.toml -parallel 2      # run locally
//	salr-sweep -config sweeps/sparsity.toml -dry-run         # list the runs
//	salr-sweep -config sweep.toml -emit slurm -parallel 8    # sbatch script
//	salr-sweep -config sweep.toml -emit k8s -image IMG -pvc CLAIM
//	salr-sweep -config sweep.toml -emit slurm -ranks 8 -ranks-per-node 4  # MPI runs
//	salr-sweep -config sweep.toml -index 3                   # execute run 3 only
//	salr-sweep -collect runs/sweeps/sparsity                 # results table + plots
//	salr-sweep -curves runs/a,runs/b -labels "1 rank,2 ranks" -out curves.png
//
// Exit status: 0 on success, 1 when a run or the command fails, 2 for bad
// usage, 130 when interrupted (rerun the same command to continue).
package main

import (
	"bytes"
	"context"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"

	"github.com/salr-go/salr/cmd/internal/cli"
	"github.com/salr-go/salr/internal/atomicfile"
	"github.com/salr-go/salr/internal/mpi"
	"github.com/salr-go/salr/kernels"
	"github.com/salr-go/salr/trainer"
	"github.com/salr-go/salr/trainer/sweep"
)

// options are the command-line flags.
type options struct {
	config   string
	sets     cli.StringList
	parallel int
	dryRun   bool
	index    int
	threads  int
	collect  string
	curves   string
	labels   string
	emit     string
	out      string
	emitOpt  sweep.EmitOptions
	env      cli.StringList
}

func (o *options) addFlags(fs *flag.FlagSet) {
	d := sweep.DefaultEmitOptions()
	fs.StringVar(&o.config, "config", "", "sweep file, or an embedded sweep (sweeps/sparsity.toml, sweeps/rank.toml, sweeps/methods.toml) (required unless -collect)")
	fs.Var(&o.sets, "set", "override a config key in every run, KEY=VALUE (repeatable)")
	fs.IntVar(&o.parallel, "parallel", 1, "runs executed at once (locally; the array throttle or Job parallelism with -emit)")
	fs.BoolVar(&o.dryRun, "dry-run", false, "list the runs (index, directory, varied values, state) and exit")
	fs.IntVar(&o.index, "index", -1, "execute only run `i` in this process (what cluster workers run)")
	fs.IntVar(&o.threads, "threads", 0, "threads of an -index run (0: the config's train.threads)")
	fs.StringVar(&o.collect, "collect", "", "write results.csv, results.md, objective.png and loss_curves.png (and results_mean_sd.csv when train.seed varies) of a sweep `directory` (or sweep file)")
	fs.StringVar(&o.curves, "curves", "", "overlay the loss curves of comma-separated run `directories` in one PNG (-out, default loss_curves.png)")
	fs.StringVar(&o.labels, "labels", "", "-curves: comma-separated legend `names` of the runs (default: the directories' names)")
	fs.StringVar(&o.emit, "emit", "", "write a cluster job instead of running: slurm (sbatch job array) or k8s (Indexed Job)")
	fs.StringVar(&o.out, "out", "", "file written by -emit (default: sweep.sbatch or sweep-job.yaml in the sweep directory; - for stdout) or -curves")
	fs.IntVar(&o.emitOpt.CPUs, "cpus", d.CPUs, "-emit: cores per run (Slurm --cpus-per-task, Kubernetes cpu)")
	fs.StringVar(&o.emitOpt.Mem, "mem", d.Mem, "-emit: memory per run (Slurm --mem, Kubernetes memory)")
	fs.StringVar(&o.emitOpt.Time, "time", d.Time, "-emit slurm: time limit per run (--time)")
	fs.StringVar(&o.emitOpt.Partition, "partition", "", "-emit slurm: partition")
	fs.StringVar(&o.emitOpt.Account, "account", "", "-emit slurm: account")
	fs.StringVar(&o.emitOpt.WorkDir, "workdir", "", "-emit slurm: working directory of the jobs, on a shared filesystem (default: the current directory)")
	fs.StringVar(&o.emitOpt.Image, "image", "", "-emit k8s: container image with salr-sweep")
	fs.StringVar(&o.emitOpt.PVC, "pvc", "", "-emit k8s: PersistentVolumeClaim of the shared filesystem for the outputs")
	fs.StringVar(&o.emitOpt.Mount, "mount", d.Mount, "-emit k8s: where the volume is mounted (the workers' working directory)")
	fs.IntVar(&o.emitOpt.Retries, "retries", d.Retries, "-emit k8s: retries of a failed run (backoffLimitPerIndex)")
	fs.StringVar(&o.emitOpt.Binary, "binary", d.Binary, "-emit: the salr-sweep command on the cluster")
	fs.IntVar(&o.emitOpt.Ranks, "ranks", d.Ranks, "-emit: MPI ranks per run (Slurm srun --mpi=pmix --ntasks, Kubernetes an MPIJob per run); must divide train.batch_size; -cpus and -mem are then per rank")
	fs.IntVar(&o.emitOpt.RanksPerNode, "ranks-per-node", 0, "-emit with -ranks: ranks per node (Slurm --ntasks-per-node, Kubernetes slotsPerWorker; 0: Slurm places them, one per worker pod)")
	fs.Var(&o.env, "env", "-emit: NAME=VALUE set for the workers (repeatable), e.g. SALR_ASSETS=/data/assets")
}

// parseArgs reads the command line; -h prints the help to stdout.
func parseArgs(args []string, stdout io.Writer) (options, error) {
	var o options
	fs := cli.NewFlagSet("salr-sweep",
		"salr-sweep -config SWEEP [-parallel N] [-dry-run | -index I | -emit slurm|k8s] [-set KEY=VALUE ...]\nsalr-sweep -collect SWEEP_DIR\nsalr-sweep -curves RUN_DIR,RUN_DIR... [-labels A,B...] [-out FILE.png]",
		"Run an experiment sweep on this machine, or write a Slurm or Kubernetes job that runs it on a cluster,\nand collect its results into a table and plots; or overlay the loss curves of any runs.\nOne of -config, -collect and -curves is required.")
	o.addFlags(fs)
	if err := cli.Parse(fs, args, stdout); err != nil {
		return o, err
	}
	o.emitOpt.Parallel = o.parallel
	o.emitOpt.Env = o.env
	switch {
	case countTrue(o.config != "", o.collect != "", o.curves != "") != 1:
		return o, cli.UsageError("give exactly one of -config, -collect and -curves")
	case o.labels != "" && o.curves == "":
		return o, cli.UsageError("-labels applies only to -curves")
	case o.parallel < 1:
		return o, cli.UsageError("-parallel must be >= 1")
	case o.emit != "" && o.emit != "slurm" && o.emit != "k8s":
		return o, cli.UsageError(fmt.Sprintf("-emit %q: want slurm or k8s", o.emit))
	case o.config != "" && countTrue(o.dryRun, o.index >= 0, o.emit != "") > 1:
		return o, cli.UsageError("-dry-run, -index and -emit exclude each other")
	case o.emitOpt.Ranks < 1:
		return o, cli.UsageError(fmt.Sprintf("-ranks must be >= 1 (got %d)", o.emitOpt.Ranks))
	case o.emitOpt.RanksPerNode < 0:
		return o, cli.UsageError(fmt.Sprintf("-ranks-per-node must be >= 0 (got %d)", o.emitOpt.RanksPerNode))
	case (o.emitOpt.Ranks > 1 || o.emitOpt.RanksPerNode > 0) && o.emit == "":
		return o, cli.UsageError("-ranks and -ranks-per-node apply only to -emit")
	case o.emit == "k8s" && o.emitOpt.Ranks > 1 && o.parallel > 1:
		return o, cli.UsageError("-parallel does not apply to -emit k8s -ranks: every run is its own MPIJob, all submitted at once (throttle them with a queue such as Kueue)")
	}
	return o, nil
}

func countTrue(bs ...bool) int {
	n := 0
	for _, b := range bs {
		if b {
			n++
		}
	}
	return n
}

func main() { cli.Main("salr-sweep", command) }

// command parses args and runs.
func command(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	o, err := parseArgs(args, stdout)
	if err != nil {
		return err
	}
	return run(ctx, o, stdout, stderr)
}

// run does what the options say.
func run(ctx context.Context, o options, stdout, stderr io.Writer) error {
	if o.collect != "" {
		return collect(o.collect, stdout)
	}
	if o.curves != "" {
		return curves(o, stdout)
	}
	s, err := sweep.Load(o.config, o.sets)
	if err != nil {
		return err
	}
	runs, err := s.Expand()
	if err != nil {
		return err
	}
	switch {
	case o.dryRun:
		fmt.Fprintf(stdout, "sweep %s: %d runs in %s\n", s.Name, len(runs), s.Dir())
		return sweep.List(stdout, runs)
	case o.index >= 0:
		return runIndex(ctx, s, runs, o, stderr)
	case o.emit != "":
		return emit(s, runs, o, stdout, stderr)
	}
	_, err = sweep.RunLocal(ctx, s, runs, sweep.LocalOptions{Parallel: o.parallel, Out: stdout})
	if err != nil {
		return err
	}
	return collect(s.Dir(), stdout)
}

// runIndex executes one run in this process.
func runIndex(ctx context.Context, s *sweep.Sweep, runs []sweep.Run, o options, stderr io.Writer) error {
	if o.index >= len(runs) {
		return fmt.Errorf("-index %d: sweep %s has runs 0 to %d", o.index, s.Name, len(runs)-1)
	}
	r := runs[o.index]
	threads := o.threads
	if threads <= 0 {
		threads = r.Config.Train.Threads
	}
	kernels.SetThreads(threads)
	if err := sweep.WriteManifest(s, runs); err != nil {
		return err
	}
	// Under mpirun or srun (a build with the tag mpi) the run is one
	// data-parallel training of all the job's ranks.
	return cli.RunAsRank("salr-sweep", stderr, func(world *mpi.World) error {
		return sweep.Execute(ctx, r, sweep.ExecOptions{Log: stderr, Progress: cli.Progress(stderr), Comm: world})
	})
}

// emit writes the Slurm script or Kubernetes manifest.
func emit(s *sweep.Sweep, runs []sweep.Run, o options, stdout, stderr io.Writer) error {
	eo := o.emitOpt
	write, name := sweep.EmitSlurm, sweep.SlurmFile
	if o.emit == "k8s" {
		write, name = sweep.EmitK8s, sweep.K8sFile
	}
	if eo.WorkDir == "" {
		wd, err := os.Getwd()
		if err != nil {
			return err
		}
		eo.WorkDir = wd
	}
	// Render first: bad options (-ranks not dividing a run's batch size, a
	// missing -image, ...) fail before anything is written.
	var job bytes.Buffer
	if err := write(&job, s, eo); err != nil {
		return err
	}
	if err := sweep.WriteManifest(s, runs); err != nil {
		return err
	}
	if o.out == "-" {
		_, err := stdout.Write(job.Bytes())
		return err
	}
	path := o.out
	if path == "" {
		path = filepath.Join(s.Dir(), name)
	}
	if err := atomicfile.Write(path, func(w io.Writer) error { _, err := w.Write(job.Bytes()); return err }); err != nil {
		return err
	}
	submit := "sbatch " + path
	if o.emit == "k8s" {
		submit = "kubectl apply -f " + path
	}
	ranks := ""
	if eo.Ranks > 1 {
		ranks = fmt.Sprintf(" of %d ranks", eo.Ranks)
	}
	fmt.Fprintf(stderr, "wrote %s (%d runs%s); submit with: %s\n", path, len(runs), ranks, submit)
	return nil
}

// curves overlays the loss curves of the -curves runs.
func curves(o options, stdout io.Writer) error {
	runs := strings.Split(o.curves, ",")
	var labels []string
	if o.labels != "" {
		labels = strings.Split(o.labels, ",")
		if len(labels) != len(runs) {
			return cli.UsageError(fmt.Sprintf("-labels names %d runs, -curves gives %d", len(labels), len(runs)))
		}
	}
	path := o.out
	if path == "" {
		path = sweep.CurvesPlot
	}
	names := labels
	if names == nil {
		for _, r := range runs {
			names = append(names, filepath.Base(r))
		}
	}
	if err := trainer.PlotRuns(path, strings.Join(names, " vs "), runs, labels); err != nil {
		return err
	}
	fmt.Fprintf(stdout, "wrote %s\n", path)
	return nil
}

// collect writes the results of a sweep directory (or of the sweep file's
// directory) and prints the Markdown table.
func collect(target string, stdout io.Writer) error {
	dir := target
	if info, err := os.Stat(target); err != nil || !info.IsDir() {
		s, err := sweep.Load(target, nil)
		if err != nil {
			return err
		}
		dir = s.Dir()
	}
	res, written, err := sweep.WriteResults(dir)
	if err != nil {
		return err
	}
	fmt.Fprint(stdout, res.Markdown())
	fmt.Fprintf(stdout, "\nwrote %s\n", strings.Join(written, ", "))
	return nil
}
