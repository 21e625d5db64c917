package sweep

import (
	"bytes"
	"errors"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"

	"gopkg.in/yaml.v3"
)

// singleRankOptions are the options testdata/single-rank.* were emitted
// with, by the code before multi-rank runs existed (with the sweep's
// temporary directory written as TMP).
func singleRankOptions() EmitOptions {
	o := DefaultEmitOptions()
	o.Parallel, o.CPUs, o.Mem, o.Time, o.Partition, o.Account = 2, 3, "4G", "01:00:00", "cpu", "proj"
	o.WorkDir, o.Env = "/shared/work dir", []string{"SALR_ASSETS=/shared/assets $dir"}
	o.Image, o.PVC, o.Mount = "registry.example/salr:1.0", "salr-runs", "/work"
	return o
}

// TestEmitSingleRankUnchanged checks that -ranks 1 (the default) emits
// byte for byte what salr-sweep emitted before it learnt multi-rank runs.
func TestEmitSingleRankUnchanged(t *testing.T) {
	s := emitSweep(t)
	tmp := filepath.Dir(filepath.Dir(s.File))
	o := singleRankOptions()
	if o.Ranks != 1 {
		t.Fatalf("default Ranks %d, want 1", o.Ranks)
	}
	for _, c := range []struct {
		file string
		emit func(*bytes.Buffer, *Sweep, EmitOptions) error
	}{
		{"single-rank.sbatch", func(b *bytes.Buffer, s *Sweep, o EmitOptions) error { return EmitSlurm(b, s, o) }},
		{"single-rank-job.yaml", func(b *bytes.Buffer, s *Sweep, o EmitOptions) error { return EmitK8s(b, s, o) }},
	} {
		want, err := os.ReadFile(filepath.Join("testdata", c.file))
		if err != nil {
			t.Fatal(err)
		}
		var b bytes.Buffer
		if err := c.emit(&b, s, o); err != nil {
			t.Fatal(err)
		}
		if got := strings.ReplaceAll(b.String(), tmp, "TMP"); got != string(want) {
			t.Errorf("%s changed:\n%s\nwant\n%s", c.file, got, want)
		}
	}
}

// sbatchDirectives returns the #SBATCH options of a script that come before
// its first command (sbatch ignores later ones).
func sbatchDirectives(script string) []string {
	var directives []string
	for _, line := range strings.Split(script, "\n") {
		if strings.HasPrefix(line, "#SBATCH ") {
			directives = append(directives, strings.TrimPrefix(line, "#SBATCH "))
		} else if line != "" && !strings.HasPrefix(line, "#") {
			break
		}
	}
	return directives
}

func TestEmitSlurmRanks(t *testing.T) {
	s := emitSweep(t, "train.batch_size=8")
	dir := t.TempDir()
	// A stand-in srun prints its arguments, one per line, and the
	// environment the script exports.
	if err := os.WriteFile(filepath.Join(dir, "srun"), []byte("#!/bin/sh\nfor a in \"$@\"; do echo \"$a\"; done\necho \"SALR_ASSETS=$SALR_ASSETS\"\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	o := DefaultEmitOptions()
	o.Parallel, o.CPUs, o.Mem, o.Time = 2, 3, "10G", "01:00:00"
	o.Ranks, o.RanksPerNode = 4, 2
	o.WorkDir, o.Binary, o.Env = dir, "/opt/salr bin/salr-sweep", []string{"SALR_ASSETS=/shared/assets dir"}
	var b bytes.Buffer
	if err := EmitSlurm(&b, s, o); err != nil {
		t.Fatal(err)
	}
	script := b.String()
	path := filepath.Join(dir, SlurmFile)
	if err := os.WriteFile(path, b.Bytes(), 0o755); err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command("bash", "-n", path).CombinedOutput(); err != nil {
		t.Fatalf("bash -n: %v\n%s\n%s", err, out, script)
	}
	directives := sbatchDirectives(script)
	// 10G over 3 cores: 10240/3 = 3413.3 MiB, rounded up.
	for _, want := range []string{"--array=0-5%2", "--ntasks=4", "--nodes=2", "--ntasks-per-node=2",
		"--cpus-per-task=3", "--mem-per-cpu=3414M", "--time=01:00:00", "--chdir=" + dir, "--signal=B:TERM@120"} {
		if !slices.Contains(directives, want) {
			t.Errorf("no #SBATCH %s before the first command:\n%s", want, script)
		}
	}
	for _, d := range directives {
		if strings.HasPrefix(d, "--mem=") {
			t.Errorf("#SBATCH %s: a multi-rank job sets memory per core", d)
		}
	}
	// Array task 4 runs srun --mpi=pmix over the worker of run 4.
	cmd := exec.Command("bash", path)
	cmd.Env = append(os.Environ(), "PATH="+dir+":"+os.Getenv("PATH"), "SLURM_ARRAY_TASK_ID=4", "SLURM_CPUS_PER_TASK=3")
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("running the script: %v\n%s", err, out)
	}
	want := append([]string{"--mpi=pmix", "--kill-on-bad-exit=1", "--cpus-per-task", "3", o.Binary}, s.WorkerArgs("4", "3")...)
	want = append(want, "SALR_ASSETS=/shared/assets dir")
	if got := strings.Split(strings.TrimSuffix(string(out), "\n"), "\n"); !slices.Equal(got, want) {
		t.Errorf("srun got\n%q\nwant\n%q", got, want)
	}

	// Without -ranks-per-node Slurm places the ranks.
	o.RanksPerNode = 0
	b.Reset()
	if err := EmitSlurm(&b, s, o); err != nil {
		t.Fatal(err)
	}
	directives = sbatchDirectives(b.String())
	if !slices.Contains(directives, "--ntasks=4") || slices.ContainsFunc(directives, func(d string) bool {
		return strings.HasPrefix(d, "--nodes") || strings.HasPrefix(d, "--ntasks-per-node")
	}) {
		t.Errorf("without -ranks-per-node: %q", directives)
	}
}

// mpiJob is the part of a kubeflow.org/v2beta1 MPIJob the tests read.
type mpiJob struct {
	APIVersion string `yaml:"apiVersion"`
	Kind       string `yaml:"kind"`
	Metadata   struct {
		Name   string            `yaml:"name"`
		Labels map[string]string `yaml:"labels"`
	} `yaml:"metadata"`
	Spec struct {
		SlotsPerWorker    int    `yaml:"slotsPerWorker"`
		MPIImplementation string `yaml:"mpiImplementation"`
		RunPolicy         struct {
			BackoffLimit int `yaml:"backoffLimit"`
		} `yaml:"runPolicy"`
		Replicas map[string]struct {
			Replicas int `yaml:"replicas"`
			Template struct {
				Spec k8sPodSpec `yaml:"spec"`
			} `yaml:"template"`
		} `yaml:"mpiReplicaSpecs"`
	} `yaml:"spec"`
}

func TestEmitK8sRanks(t *testing.T) {
	s := emitSweep(t, "train.batch_size=8")
	o := DefaultEmitOptions()
	o.CPUs, o.Mem, o.Retries = 2, "6Gi", 3
	o.Ranks, o.RanksPerNode = 4, 2
	o.Image, o.PVC, o.Mount = "registry.example/salr:1.0", "salr-runs", "/work"
	o.Env = []string{"SALR_ASSETS=/work/assets $x"}
	var b bytes.Buffer
	if err := EmitK8s(&b, s, o); err != nil {
		t.Fatal(err)
	}
	dec := yaml.NewDecoder(bytes.NewReader(b.Bytes()))
	var jobs []mpiJob
	for {
		var j mpiJob
		err := dec.Decode(&j)
		if err != nil {
			if errors.Is(err, io.EOF) {
				break
			}
			t.Fatalf("not valid YAML: %v\n%s", err, b.String())
		}
		jobs = append(jobs, j)
	}
	if len(jobs) != s.Len() {
		t.Fatalf("%d MPIJobs for %d runs:\n%s", len(jobs), s.Len(), b.String())
	}
	names := map[string]bool{}
	for i, j := range jobs {
		names[j.Metadata.Name] = true
		if j.APIVersion != "kubeflow.org/v2beta1" || j.Kind != "MPIJob" || j.Spec.SlotsPerWorker != 2 ||
			j.Spec.MPIImplementation != "OpenMPI" || j.Spec.RunPolicy.BackoffLimit != 3 ||
			j.Metadata.Labels["salr.sweep"] != "salr-emit-test-v1" || len(j.Metadata.Name) > 52 {
			t.Errorf("MPIJob %d: %+v", i, j)
		}
		l, w := j.Spec.Replicas["Launcher"], j.Spec.Replicas["Worker"]
		if len(j.Spec.Replicas) != 2 || l.Replicas != 1 || w.Replicas != 2 ||
			len(l.Template.Spec.Containers) != 1 || len(w.Template.Spec.Containers) != 1 {
			t.Fatalf("MPIJob %d replicas: %+v", i, j.Spec.Replicas)
		}
		// The launcher's mpirun, as Kubernetes expands it ($$ is $), starts
		// 4 ranks of the worker of run i in the mount, with the variables.
		var cmd []string
		for _, a := range l.Template.Spec.Containers[0].Command {
			cmd = append(cmd, k8sExpand(a, nil))
		}
		np := slices.Index(cmd, "-np")
		wd := slices.Index(cmd, "--wdir")
		x := slices.Index(cmd, "-x")
		bin := slices.Index(cmd, "salr-sweep")
		if len(cmd) == 0 || cmd[0] != "mpirun" || np < 0 || cmd[np+1] != "4" || wd < 0 || cmd[wd+1] != "/work" ||
			x < 0 || cmd[x+1] != "SALR_ASSETS=/work/assets $x" || bin < 0 ||
			!slices.Equal(cmd[bin+1:], s.WorkerArgs(strconv.Itoa(i), "2")) || l.Template.Spec.Containers[0].Image != o.Image {
			t.Errorf("MPIJob %d launcher runs %q", i, cmd)
		}
		c := w.Template.Spec.Containers[0]
		vols := w.Template.Spec.Volumes
		if c.Image != o.Image || !slices.Equal(c.Command, []string{"/usr/sbin/sshd", "-De"}) || c.Resources.Requests["cpu"] != "4" || c.Resources.Limits["cpu"] != "4" ||
			c.Resources.Requests["memory"] != "12Gi" || c.Resources.Limits["memory"] != "12Gi" ||
			len(c.VolumeMounts) != 1 || c.VolumeMounts[0].MountPath != "/work" || len(vols) != 1 ||
			vols[0].Name != c.VolumeMounts[0].Name || vols[0].PersistentVolumeClaim.ClaimName != "salr-runs" {
			t.Errorf("MPIJob %d worker: %+v, volumes %+v", i, c, vols)
		}
	}
	if len(names) != len(jobs) {
		t.Errorf("MPIJob names repeat: %v", names)
	}
}

func TestEmitRanksErrors(t *testing.T) {
	tmp := t.TempDir()
	assetsDir(t)
	path := filepath.Join(tmp, "bs.toml")
	text := "name = \"bs\"\nbase = \"quickstart.toml\"\nroot = \"" + filepath.Join(tmp, "out") + "\"\n[grid]\n\"train.batch_size\" = [8, 6]\n"
	if err := os.WriteFile(path, []byte(text), 0o644); err != nil {
		t.Fatal(err)
	}
	s, err := Load(path, nil)
	if err != nil {
		t.Fatal(err)
	}
	o := DefaultEmitOptions()
	o.WorkDir, o.Image, o.PVC = "/w", "img", "claim"
	for _, c := range []struct {
		ranks, perNode int
		mem            string
		want           []string
	}{
		{0, 0, "8G", []string{"-ranks", ">= 1"}},
		{4, 0, "8G", []string{"-ranks 4", "train.batch_size 6", "run 1", "train.batch_size=6"}},
		{4, 3, "8G", []string{"-ranks-per-node 3", "-ranks 4"}},
		{2, -1, "8G", []string{"-ranks-per-node", ">= 0"}},
		{2, 2, "lots", []string{"-mem", "lots"}},
	} {
		o.Ranks, o.RanksPerNode, o.Mem = c.ranks, c.perNode, c.mem
		for name, emit := range map[string]func(*bytes.Buffer) error{
			"slurm": func(b *bytes.Buffer) error { return EmitSlurm(b, s, o) },
			"k8s":   func(b *bytes.Buffer) error { return EmitK8s(b, s, o) },
		} {
			var b bytes.Buffer
			err := emit(&b)
			if err == nil {
				t.Errorf("%s -ranks %d -ranks-per-node %d -mem %s: no error", name, c.ranks, c.perNode, c.mem)
				continue
			}
			for _, w := range c.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("%s -ranks %d -ranks-per-node %d: %v, want it to name %q", name, c.ranks, c.perNode, err, w)
				}
			}
			if b.Len() != 0 {
				t.Errorf("%s wrote %d bytes before failing", name, b.Len())
			}
		}
	}
	// Two ranks divide both batch sizes.
	o.Ranks, o.RanksPerNode, o.Mem = 2, 0, "8G"
	if err := EmitSlurm(&bytes.Buffer{}, s, o); err != nil {
		t.Error(err)
	}
}

func TestSlurmMemPerCPU(t *testing.T) {
	for _, c := range []struct {
		mem  string
		cpus int
		want string
	}{
		{"8G", 4, "2048M"}, {"8g", 3, "2731M"}, {"8000", 2, "4000M"}, {"1T", 1024, "1024M"},
		{"3000K", 1, "3M"}, {"1M", 4, "1M"},
	} {
		got, err := slurmMemPerCPU(c.mem, c.cpus)
		if err != nil || got != c.want {
			t.Errorf("slurmMemPerCPU(%q, %d) = %q, %v; want %q", c.mem, c.cpus, got, err, c.want)
		}
	}
	for _, bad := range []string{"", "8Gi", "1.5G", "-1G", "G"} {
		if _, err := slurmMemPerCPU(bad, 1); err == nil {
			t.Errorf("slurmMemPerCPU(%q) accepted", bad)
		}
	}
}
