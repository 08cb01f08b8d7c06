package batch

import (
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
)

// Slurm describes a job, or an array job, for Slurm's sbatch.
type Slurm struct {
	Name        string
	Tasks       int    // array size, one shard per task; 0: a single job, no array
	Dependency  string // sbatch --dependency, e.g. afterok:123
	Partition   string
	Time        string // sbatch --time, e.g. 2:00:00
	CPUsPerTask int
	GPUsPerTask int
	MemPerCPU   string
	Account     string
	LogDir      string   // where each task's log goes
	Command     []string // run by every task; the shard comes from SLURM_ARRAY_TASK_*
}

// Script returns the sbatch script. Jobs and tasks are requeueable: a task killed by
// a node failure or preemption reruns and, the batch being idempotent,
// finishes only what its first run did not publish.
func (s Slurm) Script() (string, error) {
	if s.Tasks < 0 {
		return "", fmt.Errorf("slurm: %d tasks", s.Tasks)
	}
	if len(s.Command) == 0 {
		return "", fmt.Errorf("slurm: no command")
	}
	var b bytes.Buffer
	b.WriteString("#!/bin/bash\n")
	opt := func(k, v string) {
		if v != "" && v != "0" {
			fmt.Fprintf(&b, "#SBATCH --%s=%s\n", k, v)
		}
	}
	opt("job-name", s.Name)
	if s.Tasks > 0 {
		opt("array", fmt.Sprintf("0-%d", s.Tasks-1))
	}
	opt("dependency", s.Dependency)
	opt("partition", s.Partition)
	opt("time", s.Time)
	opt("cpus-per-task", strconv.Itoa(s.CPUsPerTask))
	opt("gpus-per-task", strconv.Itoa(s.GPUsPerTask))
	opt("mem-per-cpu", s.MemPerCPU)
	opt("account", s.Account)
	if s.LogDir != "" {
		opt("output", filepath.Join(s.LogDir, "%A_%a.log"))
	}
	b.WriteString("#SBATCH --requeue\n")
	b.WriteString("set -euo pipefail\n")
	b.WriteString("exec")
	for _, a := range s.Command {
		b.WriteString(" " + shellQuote(a))
	}
	b.WriteString("\n")
	return b.String(), nil
}

// Submit writes the script to path and submits it with sbatch, returning the
// job ID.
func (s Slurm) Submit(path string) (string, error) {
	script, err := s.Script()
	if err != nil {
		return "", err
	}
	if s.LogDir != "" {
		if err := os.MkdirAll(s.LogDir, 0o755); err != nil {
			return "", err
		}
	}
	if err := os.WriteFile(path, []byte(script), 0o755); err != nil {
		return "", fmt.Errorf("write %s: %w", path, err)
	}
	out, err := exec.Command("sbatch", "--parsable", path).CombinedOutput()
	if err != nil {
		return "", fmt.Errorf("sbatch %s: %w: %s", path, err, strings.TrimSpace(string(out)))
	}
	id, _, _ := strings.Cut(strings.TrimSpace(string(out)), ";") // "ID;cluster"
	return id, nil
}

// shellQuote quotes a for bash unless it is plainly safe.
func shellQuote(a string) string {
	if a != "" && strings.IndexFunc(a, func(r rune) bool {
		return !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || strings.ContainsRune("-_./=:,+@%", r))
	}) < 0 {
		return a
	}
	return "'" + strings.ReplaceAll(a, "'", `'\''`) + "'"
}
