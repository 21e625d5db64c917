package sweep

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"gopkg.in/yaml.v3"
)

// emitSweep is a 6-run sweep with awkward values to quote: a sweep file
// path with a space and a quote, and a -set override with shell
// metacharacters; extra are further -set overrides.
func emitSweep(t *testing.T, extra ...string) *Sweep {
	t.Helper()
	assetsDir(t)
	tmp := t.TempDir()
	path := writeSweep(t, tmp, "Emit_Test.v1", "[grid]\nmethod = [\"lora\", \"salr\"]\n\"sparsity.ratio\" = [0.2, 0.4, 0.5]\n")
	dir := filepath.Join(tmp, "my sweeps")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	quoted := filepath.Join(dir, "it's $HOME.toml")
	if err := os.Rename(path, quoted); err != nil {
		t.Fatal(err)
	}
	s, err := Load(quoted, append([]string{`train.seed=7`, `model.tokenizer=$$HOME/x y;z`}, extra...))
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func TestEmitSlurm(t *testing.T) {
	s := emitSweep(t)
	dir := t.TempDir()
	// A stand-in salr-sweep prints its arguments, one per line.
	fake := filepath.Join(dir, "fake salr-sweep")
	if err := os.WriteFile(fake, []byte("#!/bin/sh\nfor a in \"$@\"; do echo \"$a\"; done\necho \"SALR_ASSETS=$SALR_ASSETS\"\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	o := DefaultEmitOptions()
	o.Parallel, o.CPUs, o.Mem, o.Time, o.Partition = 2, 3, "4G", "01:00:00", "cpu"
	o.WorkDir, o.Binary, o.Env = dir, fake, []string{"SALR_ASSETS=/shared/assets dir"}
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
	// The #SBATCH lines: every one before the first command, the right
	// array range and throttle, the resources given.
	var directives []string
	for _, line := range strings.Split(script, "\n") {
		if strings.HasPrefix(line, "#SBATCH ") {
			directives = append(directives, strings.TrimPrefix(line, "#SBATCH "))
		} else if line != "" && !strings.HasPrefix(line, "#") {
			break
		}
	}
	for _, want := range []string{"--array=0-5%2", "--cpus-per-task=3", "--mem=4G", "--time=01:00:00",
		"--partition=cpu", "--chdir=" + dir, "--job-name=salr-emit-test-v1", "--signal=B:TERM@120"} {
		if !slices.Contains(directives, want) {
			t.Errorf("no #SBATCH %s before the first command:\n%s", want, script)
		}
	}
	// Running the script as array task 4 starts the worker for run 4 with
	// the sweep file and overrides intact.
	cmd := exec.Command("bash", path)
	cmd.Env = append(os.Environ(), "SLURM_ARRAY_TASK_ID=4", "SLURM_CPUS_PER_TASK=3")
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("running the script: %v\n%s", err, out)
	}
	want := append(s.WorkerArgs("4", "3"), "SALR_ASSETS=/shared/assets dir")
	if got := strings.Split(strings.TrimSuffix(string(out), "\n"), "\n"); !slices.Equal(got, want) {
		t.Errorf("the worker got\n%q\nwant\n%q", got, want)
	}
}

func TestEmitK8s(t *testing.T) {
	s := emitSweep(t)
	o := DefaultEmitOptions()
	o.Parallel, o.CPUs, o.Mem = 3, 2, "6Gi"
	o.Image, o.PVC, o.Mount = "registry.example/salr:1.0", "salr-runs", "/work"
	o.Env = []string{"SALR_ASSETS=/work/assets"}
	var b bytes.Buffer
	if err := EmitK8s(&b, s, o); err != nil {
		t.Fatal(err)
	}
	var job struct {
		APIVersion string `yaml:"apiVersion"`
		Kind       string `yaml:"kind"`
		Metadata   struct {
			Name string `yaml:"name"`
		} `yaml:"metadata"`
		Spec struct {
			CompletionMode       string `yaml:"completionMode"`
			Completions          int    `yaml:"completions"`
			Parallelism          int    `yaml:"parallelism"`
			BackoffLimitPerIndex int    `yaml:"backoffLimitPerIndex"`
			Template             struct {
				Spec k8sPodSpec `yaml:"spec"`
			} `yaml:"template"`
		} `yaml:"spec"`
	}
	if err := yaml.Unmarshal(b.Bytes(), &job); err != nil {
		t.Fatalf("not valid YAML: %v\n%s", err, b.String())
	}
	sp := job.Spec
	if job.APIVersion != "batch/v1" || job.Kind != "Job" || job.Metadata.Name != "salr-emit-test-v1" ||
		sp.CompletionMode != "Indexed" || sp.Completions != 6 || sp.Parallelism != 3 || sp.BackoffLimitPerIndex != 2 ||
		sp.Template.Spec.RestartPolicy != "Never" {
		t.Errorf("job fields: %+v", job)
	}
	if len(sp.Template.Spec.Containers) != 1 || len(sp.Template.Spec.Volumes) != 1 {
		t.Fatalf("containers/volumes: %+v", sp.Template.Spec)
	}
	c, v := sp.Template.Spec.Containers[0], sp.Template.Spec.Volumes[0]
	if c.Image != o.Image || c.WorkingDir != "/work" || !slices.Equal(c.Command, []string{"salr-sweep"}) {
		t.Errorf("container: %+v", c)
	}
	// Kubernetes expands $(VAR) in args (and reads $$ as $): index 4 runs
	// run 4 with the sweep file and overrides intact.
	var expanded []string
	for _, a := range c.Args {
		expanded = append(expanded, k8sExpand(a, map[string]string{"JOB_COMPLETION_INDEX": "4"}))
	}
	if want := s.WorkerArgs("4", "2"); !slices.Equal(expanded, want) {
		t.Errorf("args %q expand to %q, want %q", c.Args, expanded, want)
	}
	if len(c.Env) != 2 || c.Env[0].Name != "JOB_COMPLETION_INDEX" ||
		c.Env[0].ValueFrom.FieldRef.FieldPath != "metadata.annotations['batch.kubernetes.io/job-completion-index']" ||
		c.Env[1].Name != "SALR_ASSETS" || c.Env[1].Value != "/work/assets" {
		t.Errorf("env: %+v", c.Env)
	}
	if c.Resources.Requests["cpu"] != "2" || c.Resources.Limits["memory"] != "6Gi" {
		t.Errorf("resources: %+v", c.Resources)
	}
	if len(c.VolumeMounts) != 1 || c.VolumeMounts[0].Name != v.Name || c.VolumeMounts[0].MountPath != "/work" ||
		v.PersistentVolumeClaim.ClaimName != "salr-runs" {
		t.Errorf("volume %+v mounted as %+v", v, c.VolumeMounts)
	}
}

func TestEmitRejectsIncompleteOptions(t *testing.T) {
	s := emitSweep(t)
	o := DefaultEmitOptions()
	var b bytes.Buffer
	if err := EmitK8s(&b, s, o); err == nil || !strings.Contains(err.Error(), "-image") {
		t.Errorf("k8s without an image: %v", err)
	}
	o.Image = "img"
	if err := EmitK8s(&b, s, o); err == nil || !strings.Contains(err.Error(), "-pvc") {
		t.Errorf("k8s without a claim: %v", err)
	}
	o.Env = []string{"1BAD=x"}
	o.WorkDir = "/x"
	if err := EmitSlurm(&b, s, o); err == nil || !strings.Contains(err.Error(), "NAME=VALUE") {
		t.Errorf("bad -env: %v", err)
	}
}

// k8sExpand expands a container argument as Kubernetes does: $(NAME) is the
// variable's value when it is defined (else left as is), $$ is a literal $,
// and any other $ is kept.
func k8sExpand(s string, vars map[string]string) string {
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] != '$' || i+1 == len(s) {
			b.WriteByte(s[i])
			continue
		}
		switch s[i+1] {
		case '$':
			b.WriteByte('$')
			i++
		case '(':
			end := strings.IndexByte(s[i:], ')')
			if end < 0 {
				b.WriteString(s[i:])
				return b.String()
			}
			name := s[i+2 : i+end]
			if v, ok := vars[name]; ok {
				b.WriteString(v)
			} else {
				b.WriteString(s[i : i+end+1])
			}
			i += end
		default:
			b.WriteByte('$')
		}
	}
	return b.String()
}

// k8sPodSpec is the part of a pod template's spec the tests read.
type k8sPodSpec struct {
	RestartPolicy string `yaml:"restartPolicy"`
	Containers    []struct {
		Name       string   `yaml:"name"`
		Image      string   `yaml:"image"`
		WorkingDir string   `yaml:"workingDir"`
		Command    []string `yaml:"command"`
		Args       []string `yaml:"args"`
		Env        []struct {
			Name      string `yaml:"name"`
			Value     string `yaml:"value"`
			ValueFrom struct {
				FieldRef struct {
					FieldPath string `yaml:"fieldPath"`
				} `yaml:"fieldRef"`
			} `yaml:"valueFrom"`
		} `yaml:"env"`
		Resources struct {
			Requests map[string]string `yaml:"requests"`
			Limits   map[string]string `yaml:"limits"`
		} `yaml:"resources"`
		VolumeMounts []struct {
			Name      string `yaml:"name"`
			MountPath string `yaml:"mountPath"`
		} `yaml:"volumeMounts"`
	} `yaml:"containers"`
	Volumes []struct {
		Name                  string `yaml:"name"`
		PersistentVolumeClaim struct {
			ClaimName string `yaml:"claimName"`
		} `yaml:"persistentVolumeClaim"`
	} `yaml:"volumes"`
}
