package sweep

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"text/template"
)

// Default file names of the emitted job descriptions, in the sweep's
// directory.
const (
	SlurmFile = "sweep.sbatch"
	K8sFile   = "sweep-job.yaml"
)

// The variables through which the cluster engines hand a worker its index.
const (
	slurmIndexVar = "SLURM_ARRAY_TASK_ID"
	k8sIndexVar   = "JOB_COMPLETION_INDEX"
)

// EmitOptions describe the cluster jobs EmitSlurm and EmitK8s write.
type EmitOptions struct {
	// Parallel is how many runs execute at once: the Slurm array's %P
	// throttle, the Job's parallelism.
	Parallel int
	// CPUs and Mem are each run's cores and memory (Slurm --cpus-per-task
	// and --mem, e.g. "8G"; Kubernetes requests and limits, e.g. "8Gi").
	// The worker gets -threads CPUs.
	CPUs int
	Mem  string
	// Time is Slurm's --time limit per run (e.g. "12:00:00"); a run stopped
	// by it resumes when the job is resubmitted.
	Time string
	// Partition and Account are optional Slurm --partition and --account.
	Partition, Account string
	// WorkDir is the directory workers run in (Slurm --chdir; the sweep
	// file and root resolve from it). It must be on a filesystem all nodes
	// share.
	WorkDir string
	// Image is the container image holding salr-sweep (Kubernetes).
	Image string
	// PVC names the PersistentVolumeClaim of the shared filesystem, mounted
	// at Mount, which is also the workers' working directory (Kubernetes).
	PVC, Mount string
	// Retries is how often Kubernetes restarts a failed index
	// (backoffLimitPerIndex); a restarted run resumes from its checkpoint.
	Retries int
	// Binary is the salr-sweep command the jobs run.
	Binary string
	// Env holds NAME=VALUE variables set for the workers (e.g.
	// SALR_ASSETS=/data/assets).
	Env []string
	// Ranks is the number of MPI processes of each run. With 1 the jobs are
	// the single-process ones described above; with more, the Slurm array
	// task starts its run with srun --mpi=pmix over Ranks tasks of CPUs
	// cores and Mem/CPUs memory per core each (--mem-per-cpu), and the
	// Kubernetes manifest holds one MPIJob (Kubeflow MPI Operator) per run.
	// Ranks must divide train.batch_size of every run, the global batch the
	// ranks share.
	Ranks int
	// RanksPerNode places the ranks: Slurm --ntasks-per-node (with --nodes
	// Ranks/RanksPerNode), the MPIJob's slotsPerWorker (a worker pod holds
	// RanksPerNode ranks and their cores and memory). 0 lets Slurm place
	// the ranks, and gives one rank per worker pod.
	RanksPerNode int
}

// DefaultEmitOptions are the defaults of the salr-sweep -emit flags.
func DefaultEmitOptions() EmitOptions {
	return EmitOptions{Parallel: 4, CPUs: 4, Mem: "8G", Time: "12:00:00", Mount: "/data", Retries: 2, Binary: "salr-sweep", Ranks: 1}
}

// envNamePattern matches an environment variable name.
var envNamePattern = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]*$`)

// check validates the options common to both engines and returns the
// environment as name/value pairs.
func (o EmitOptions) check(s *Sweep) ([][2]string, error) {
	if s.Len() == 0 {
		return nil, fmt.Errorf("sweep %s has no runs", s.Name)
	}
	if o.Parallel < 1 || o.CPUs < 1 {
		return nil, fmt.Errorf("sweep: -parallel and -cpus must be >= 1 (got %d and %d)", o.Parallel, o.CPUs)
	}
	if o.Binary == "" || o.Mem == "" {
		return nil, fmt.Errorf("sweep: the binary and the memory of a job must be set")
	}
	var env [][2]string
	for _, e := range o.Env {
		name, value, ok := strings.Cut(e, "=")
		if !ok || !envNamePattern.MatchString(name) {
			return nil, fmt.Errorf("sweep: -env %q: want NAME=VALUE", e)
		}
		env = append(env, [2]string{name, value})
	}
	if err := o.checkRanks(s); err != nil {
		return nil, err
	}
	return env, nil
}

// checkRanks validates -ranks and -ranks-per-node against each other and
// against every run's train.batch_size.
func (o EmitOptions) checkRanks(s *Sweep) error {
	switch {
	case o.Ranks < 1:
		return fmt.Errorf("sweep: -ranks must be >= 1 (got %d)", o.Ranks)
	case o.RanksPerNode < 0:
		return fmt.Errorf("sweep: -ranks-per-node must be >= 0 (got %d)", o.RanksPerNode)
	case o.RanksPerNode > 0 && o.Ranks%o.RanksPerNode != 0:
		return fmt.Errorf("sweep: -ranks-per-node %d does not divide -ranks %d", o.RanksPerNode, o.Ranks)
	case o.Ranks == 1:
		return nil
	}
	runs, err := s.Expand()
	if err != nil {
		return err
	}
	for _, r := range runs {
		if b := r.Config.Train.BatchSize; b%o.Ranks != 0 {
			desc := r.Describe()
			if desc != "" {
				desc = " (" + desc + ")"
			}
			return fmt.Errorf("sweep %s: -ranks %d does not divide train.batch_size %d of run %d%s: every rank takes an equal share of the global batch",
				s.Name, o.Ranks, b, r.Index, desc)
		}
	}
	return nil
}

// slotsPerNode is the number of ranks on one node (Slurm) or worker pod
// (Kubernetes) of a multi-rank run.
func (o EmitOptions) slotsPerNode() int {
	if o.RanksPerNode > 0 {
		return o.RanksPerNode
	}
	return 1
}

// EmitSlurm writes an sbatch script running the sweep as a job array,
// --array=0-(N-1)%P, each task executing run $SLURM_ARRAY_TASK_ID with
// salr-sweep -index. Slurm sends SIGTERM two minutes before the time limit,
// so the run checkpoints; resubmitting the script continues the sweep.
// With o.Ranks > 1 each task allocates Ranks tasks (--ntasks, and --nodes
// and --ntasks-per-node with RanksPerNode) and starts the run's ranks with
// srun --mpi=pmix --kill-on-bad-exit=1.
func EmitSlurm(w io.Writer, s *Sweep, o EmitOptions) error {
	env, err := o.check(s)
	if err != nil {
		return err
	}
	if o.WorkDir == "" {
		return fmt.Errorf("sweep: the Slurm script needs a working directory")
	}
	if strings.Contains(o.WorkDir+s.Dir(), `"`) {
		return fmt.Errorf("sweep: the Slurm working directory and sweep directory cannot contain '\"' (#SBATCH quoting)")
	}
	args := s.WorkerArgs("$"+slurmIndexVar, "$SLURM_CPUS_PER_TASK")
	command := append([]string{o.Binary}, args...)
	data := map[string]any{"S": s, "O": o, "N": s.Len(), "Env": env, "MPI": o.Ranks > 1}
	if o.Ranks > 1 {
		perCPU, err := slurmMemPerCPU(o.Mem, o.CPUs)
		if err != nil {
			return err
		}
		data["MemPerCPU"] = perCPU
		if o.RanksPerNode > 0 {
			data["Nodes"] = o.Ranks / o.RanksPerNode
		}
		// srun starts the ranks; since Slurm 22.05 it does not take
		// --cpus-per-task from the batch job, so it is passed on.
		command = append([]string{"srun", "--mpi=pmix", "--kill-on-bad-exit=1", "--cpus-per-task", "$SLURM_CPUS_PER_TASK"}, command...)
	}
	data["Command"] = shellJoin(command)
	return render(w, slurmTemplate, data)
}

var slurmTemplate = `#!/bin/bash
# Slurm job array for salr sweep {{.S.Name}} ({{.N}} runs), written by salr-sweep -emit slurm.
#   sbatch THIS_FILE
# Every task runs one run of the sweep in {{.O.WorkDir}}; outputs go to
# {{.S.Dir}}/<index>-<hash>/ there, on a filesystem every node must share.
# Resubmitting skips finished runs and resumes interrupted ones.
# Results: salr-sweep -collect {{.S.Dir}}
#SBATCH --job-name={{jobName .S.Name}}
#SBATCH --array=0-{{dec .N}}%{{.O.Parallel}}
{{- if .MPI}}
# Each task is one run of {{.O.Ranks}} MPI ranks started by srun; a failed rank ends them all.
#SBATCH --ntasks={{.O.Ranks}}
{{- if .Nodes}}
#SBATCH --nodes={{.Nodes}}
#SBATCH --ntasks-per-node={{.O.RanksPerNode}}
{{- end}}
#SBATCH --cpus-per-task={{.O.CPUs}}
#SBATCH --mem-per-cpu={{.MemPerCPU}}
{{- else}}
#SBATCH --cpus-per-task={{.O.CPUs}}
#SBATCH --mem={{.O.Mem}}
{{- end}}
{{- if .O.Time}}
#SBATCH --time={{.O.Time}}
{{- end}}
{{- if .O.Partition}}
#SBATCH --partition={{.O.Partition}}
{{- end}}
{{- if .O.Account}}
#SBATCH --account={{.O.Account}}
{{- end}}
#SBATCH --chdir={{sb .O.WorkDir}}
#SBATCH --output={{sb (print .S.Dir "/slurm-%A_%a.out")}}
#SBATCH --signal=B:TERM@120
set -euo pipefail
{{- range .Env}}
export {{index . 0}}={{sh (index . 1)}}
{{- end}}
exec {{.Command}}
`

// EmitK8s writes a Kubernetes Indexed Job manifest (batch/v1) running the
// sweep: completions N, parallelism P, each pod executing run
// $(JOB_COMPLETION_INDEX) with salr-sweep -index, on a PersistentVolumeClaim
// mounted as the working directory. A failed or evicted index is retried
// (backoffLimitPerIndex, Kubernetes 1.29 or later) and resumes from its
// checkpoint. With o.Ranks > 1 it writes one MPIJob per run instead
// (emitMPIJobs).
func EmitK8s(w io.Writer, s *Sweep, o EmitOptions) error {
	env, err := o.check(s)
	if err != nil {
		return err
	}
	switch {
	case o.Image == "":
		return fmt.Errorf("sweep: the Kubernetes Job needs a container image (-image)")
	case o.PVC == "":
		return fmt.Errorf("sweep: the Kubernetes Job needs a PersistentVolumeClaim for the outputs (-pvc)")
	case !strings.HasPrefix(o.Mount, "/"):
		return fmt.Errorf("sweep: the mount path %q must be absolute", o.Mount)
	}
	if o.Ranks > 1 {
		return emitMPIJobs(w, s, o, env)
	}
	// Kubernetes expands $(VAR) in args and env values and reads $$ as $:
	// escape every $ but the index reference's.
	indexRef := "$(" + k8sIndexVar + ")"
	args := s.WorkerArgs(indexRef, strconv.Itoa(o.CPUs))
	for i, a := range args {
		if a != indexRef {
			args[i] = strings.ReplaceAll(a, "$", "$$")
		}
	}
	for i := range env {
		env[i][1] = strings.ReplaceAll(env[i][1], "$", "$$")
	}
	data := map[string]any{"S": s, "O": o, "N": s.Len(), "Env": env, "Args": args, "IndexVar": k8sIndexVar}
	return render(w, k8sTemplate, data)
}

var k8sTemplate = `# Kubernetes Indexed Job for salr sweep {{.S.Name}} ({{.N}} runs), written by salr-sweep -emit k8s.
#   kubectl apply -f THIS_FILE
# Outputs go to {{.S.Dir}}/<index>-<hash>/ under {{.O.Mount}} on the volume {{.O.PVC}}.
# Results: salr-sweep -collect {{.S.Dir}} (in a pod or machine with the volume mounted).
apiVersion: batch/v1
kind: Job
metadata:
  name: {{q (jobName .S.Name)}}
  labels:
    app.kubernetes.io/name: salr-sweep
    salr.sweep: {{q (jobName .S.Name)}}
spec:
  completionMode: Indexed
  completions: {{.N}}
  parallelism: {{.O.Parallel}}
  backoffLimitPerIndex: {{.O.Retries}}
  template:
    metadata:
      labels:
        app.kubernetes.io/name: salr-sweep
        salr.sweep: {{q (jobName .S.Name)}}
    spec:
      restartPolicy: Never
      terminationGracePeriodSeconds: 120
      containers:
        - name: salr-sweep
          image: {{q .O.Image}}
          workingDir: {{q .O.Mount}}
          command: [{{q .O.Binary}}]
          args:
{{- range .Args}}
            - {{q .}}
{{- end}}
          env:
            - name: {{.IndexVar}}
              valueFrom:
                fieldRef:
                  fieldPath: "metadata.annotations['batch.kubernetes.io/job-completion-index']"
{{- range .Env}}
            - name: {{index . 0}}
              value: {{q (index . 1)}}
{{- end}}
          resources:
            requests:
              cpu: {{q (print .O.CPUs)}}
              memory: {{q .O.Mem}}
            limits:
              cpu: {{q (print .O.CPUs)}}
              memory: {{q .O.Mem}}
          volumeMounts:
            - name: work
              mountPath: {{q .O.Mount}}
      volumes:
        - name: work
          persistentVolumeClaim:
            claimName: {{q .O.PVC}}
`

// emitMPIJobs writes one MPIJob (kubeflow.org/v2beta1, Kubeflow's MPI
// Operator with Open MPI) per run, as YAML documents: a launcher pod runs
// mpirun over Ranks/slotsPerWorker worker pods, each running sshd for it
// with slotsPerWorker ranks and their cores and memory. The index of each
// run is fixed in its mpirun command line; all runs are submitted at once
// (the MPI Operator has no throttle: queue them with Kueue or a quota).
func emitMPIJobs(w io.Writer, s *Sweep, o EmitOptions, env [][2]string) error {
	slots := o.slotsPerNode()
	mem, err := scaleQuantity(o.Mem, slots)
	if err != nil {
		return err
	}
	escape := func(a string) string { return strings.ReplaceAll(a, "$", "$$") }
	// mpirun starts the ranks on the workers over ssh, where the
	// container's environment is not set: the working directory and the
	// variables are passed on its command line. Open MPI binds each rank
	// to one core by default with two ranks or fewer; a rank runs CPUs
	// threads.
	mpirun := []string{"mpirun", "--allow-run-as-root", "-np", strconv.Itoa(o.Ranks), "--bind-to", "none", "--wdir", escape(o.Mount)}
	for _, e := range env {
		mpirun = append(mpirun, "-x", escape(e[0]+"="+e[1]))
	}
	mpirun = append(mpirun, escape(o.Binary))
	jobs := make([]map[string]any, s.Len())
	for i := range jobs {
		args := slices.Clone(mpirun)
		for _, a := range s.WorkerArgs(strconv.Itoa(i), strconv.Itoa(o.CPUs)) {
			args = append(args, escape(a))
		}
		jobs[i] = map[string]any{"Name": fmt.Sprintf("%s-%d", jobName(s.Name), i), "Index": i, "Args": args}
	}
	data := map[string]any{
		"S": s, "O": o, "N": s.Len(), "Jobs": jobs, "Slots": slots, "Workers": o.Ranks / slots,
		"CPU": strconv.Itoa(slots * o.CPUs), "Mem": mem,
	}
	return render(w, mpiJobTemplate, data)
}

var mpiJobTemplate = `# Kubeflow MPIJobs for salr sweep {{.S.Name}} ({{.N}} runs of {{.O.Ranks}} MPI ranks), written by salr-sweep -emit k8s -ranks {{.O.Ranks}}.
#   kubectl apply -f THIS_FILE
# One MPIJob per run, all submitted at once; the MPI Operator (v2beta1) must be installed.
# The image needs Open MPI, sshd and salr-sweep built with MPI support.
# Outputs go to {{.S.Dir}}/<index>-<hash>/ under {{.O.Mount}} on the volume {{.O.PVC}}.
# Results: salr-sweep -collect {{.S.Dir}} (in a pod or machine with the volume mounted).
{{- range .Jobs}}
---
apiVersion: kubeflow.org/v2beta1
kind: MPIJob
metadata:
  name: {{q .Name}}
  labels:
    app.kubernetes.io/name: salr-sweep
    salr.sweep: {{q (jobName $.S.Name)}}
    salr.run: {{q (print .Index)}}
spec:
  slotsPerWorker: {{$.Slots}}
  mpiImplementation: OpenMPI
  runPolicy:
    cleanPodPolicy: Running
    backoffLimit: {{$.O.Retries}}
  mpiReplicaSpecs:
    Launcher:
      replicas: 1
      template:
        metadata:
          labels:
            app.kubernetes.io/name: salr-sweep
            salr.sweep: {{q (jobName $.S.Name)}}
        spec:
          containers:
            - name: launcher
              image: {{q $.O.Image}}
              command:
{{- range .Args}}
                - {{q .}}
{{- end}}
    Worker:
      replicas: {{$.Workers}}
      template:
        metadata:
          labels:
            app.kubernetes.io/name: salr-sweep
            salr.sweep: {{q (jobName $.S.Name)}}
        spec:
          terminationGracePeriodSeconds: 120
          containers:
            - name: worker
              image: {{q $.O.Image}}
              command: ["/usr/sbin/sshd", "-De"]
              workingDir: {{q $.O.Mount}}
              resources:
                requests:
                  cpu: {{q $.CPU}}
                  memory: {{q $.Mem}}
                limits:
                  cpu: {{q $.CPU}}
                  memory: {{q $.Mem}}
              volumeMounts:
                - name: work
                  mountPath: {{q $.O.Mount}}
          volumes:
            - name: work
              persistentVolumeClaim:
                claimName: {{q $.O.PVC}}
{{- end}}
`

// slurmMemPerCPU turns a run's memory in Slurm's notation (a number with
// an optional K, M, G or T suffix; M when none) into --mem-per-cpu for
// ranks of cpus cores each, in MiB rounded up.
func slurmMemPerCPU(mem string, cpus int) (string, error) {
	m := slurmSizePattern.FindStringSubmatch(mem)
	if m == nil {
		return "", fmt.Errorf("sweep: -mem %q: want a Slurm size such as 8G or 8000M (with -ranks > 1 it is each rank's memory, written as --mem-per-cpu)", mem)
	}
	n, err := strconv.ParseUint(m[1], 10, 40)
	if err != nil {
		return "", fmt.Errorf("sweep: -mem %q: %w", mem, err)
	}
	shift := map[string]uint{"K": 0, "M": 10, "": 10, "G": 20, "T": 30}[strings.ToUpper(m[2])]
	kib := n << shift
	perCPU := (kib + uint64(cpus)*1024 - 1) / (uint64(cpus) * 1024)
	return strconv.FormatUint(perCPU, 10) + "M", nil
}

var slurmSizePattern = regexp.MustCompile(`^([0-9]+)([KMGTkmgt]?)$`)

// scaleQuantity multiplies a Kubernetes memory quantity (an integer with
// an optional suffix such as Gi or G) by n.
func scaleQuantity(q string, n int) (string, error) {
	if n == 1 {
		return q, nil
	}
	m := quantityPattern.FindStringSubmatch(q)
	if m == nil {
		return "", fmt.Errorf("sweep: -mem %q: want an integer Kubernetes quantity such as 8Gi (with -ranks-per-node it is each rank's memory, multiplied per worker pod)", q)
	}
	v, err := strconv.ParseUint(m[1], 10, 40)
	if err != nil {
		return "", fmt.Errorf("sweep: -mem %q: %w", q, err)
	}
	return strconv.FormatUint(v*uint64(n), 10) + m[2], nil
}

var quantityPattern = regexp.MustCompile(`^([0-9]+)(|Ki|Mi|Gi|Ti|Pi|k|M|G|T|P)$`)

// render executes a template with the helpers the job templates use.
func render(w io.Writer, text string, data any) error {
	t := template.Must(template.New("job").Funcs(template.FuncMap{
		"q":       quoteScalar,
		"dec":     func(n int) int { return n - 1 },
		"jobName": jobName,
		"sh":      shellQuote,
		"sb":      sbatchValue,
	}).Parse(text))
	var b bytes.Buffer
	if err := t.Execute(&b, data); err != nil {
		panic("sweep: job template: " + err.Error())
	}
	_, err := w.Write(b.Bytes())
	return err
}

// quoteScalar renders s as a double-quoted string that YAML reads back
// unchanged (JSON string syntax is a subset of YAML's).
func quoteScalar(s string) string {
	var b bytes.Buffer
	enc := json.NewEncoder(&b)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(s); err != nil {
		panic("sweep: quoting a string: " + err.Error())
	}
	return strings.TrimSuffix(b.String(), "\n")
}

// jobName turns a sweep name into a name valid for Slurm and Kubernetes
// (a DNS-1123 label: lower-case letters, digits and '-', at most 63
// characters; shorter here, as Kubernetes appends pod suffixes).
func jobName(name string) string {
	var b strings.Builder
	b.WriteString("salr-")
	for _, r := range strings.ToLower(name) {
		if r >= 'a' && r <= 'z' || r >= '0' && r <= '9' {
			b.WriteRune(r)
		} else {
			b.WriteByte('-')
		}
	}
	n := b.String()
	if len(n) > 47 {
		n = n[:47]
	}
	return strings.TrimRight(n, "-")
}

// shellJoin renders a command line for bash: arguments that are just a
// variable reference ("$NAME") are double-quoted so that bash expands
// them; all others are single-quoted when they need quoting at all.
func shellJoin(args []string) string {
	out := make([]string, len(args))
	for i, a := range args {
		out[i] = shellQuote(a)
	}
	return strings.Join(out, " ")
}

// sbatchValue double-quotes an #SBATCH option value holding blanks (sbatch
// reads quoted values; the value must not hold a double quote).
func sbatchValue(v string) string {
	if strings.ContainsAny(v, " \t") {
		return `"` + v + `"`
	}
	return v
}

var (
	shellVarPattern  = regexp.MustCompile(`^\$[A-Za-z_][A-Za-z0-9_]*$`)
	shellSafePattern = regexp.MustCompile(`^[A-Za-z0-9_./:=+,@%-]+$`)
)

func shellQuote(a string) string {
	switch {
	case shellVarPattern.MatchString(a):
		return `"` + a + `"`
	case shellSafePattern.MatchString(a):
		return a
	}
	return "'" + strings.ReplaceAll(a, "'", `'\''`) + "'"
}
