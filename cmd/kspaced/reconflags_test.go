package main

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/spf13/cobra"

	"github.com/kspaced/kspaced/configs"
)

// applyFlags parses args on a command with every reconFlags flag and
// applies them over cfg.
func applyFlags(t *testing.T, cfg *configs.Config, args ...string) error {
	t.Helper()
	var rf reconFlags
	cmd := &cobra.Command{Use: "x"}
	f := cmd.Flags()
	f.StringVar(&rf.method, "method", "", "")
	f.StringVar(&rf.device, "device", "cpu", "")
	f.BoolVar(&rf.npy, "npy", false, "")
	f.BoolVar(&rf.dicom, "dicom", true, "")
	f.BoolVar(&rf.previews, "previews", true, "")
	rf.registerSampler(cmd)
	if err := f.Parse(args); err != nil {
		t.Fatal(err)
	}
	return rf.apply(cmd, cfg)
}

// A flag left out keeps the config's value even where the flag's default
// differs from it; a flag given replaces it.
func TestReconFlagsApply(t *testing.T) {
	cfg := configs.Default()
	s := &cfg.Recon.Sampler
	cfg.Recon.Method, s.Prior, s.Steps, s.CGIterations, s.Samples, s.Covariance = "mmps", "cfg.safetensors", 48, 2, 5, "jacobian"
	cfg.Output.DICOM, cfg.Output.NPY, s.Antithetic = false, true, false
	if err := applyFlags(t, cfg); err != nil {
		t.Fatal(err)
	}
	if cfg.Recon.Method != "mmps" || s.Prior != "cfg.safetensors" || s.Steps != 48 || s.CGIterations != 2 || s.Samples != 5 ||
		s.Covariance != "jacobian" || s.StepVariance != "ddpm" || s.Antithetic || cfg.Output.DICOM || !cfg.Output.NPY || !cfg.Output.Previews || cfg.Recon.Device != "cpu" {
		t.Fatalf("no flags changed the config: %+v %+v", cfg.Recon, cfg.Output)
	}
	err := applyFlags(t, cfg, "--method", "dps", "--prior", "p.safetensors", "--steps", "16", "--cg", "4", "--samples", "3",
		"--covariance", "diagonal", "--step-variance", "posterior", "--antithetic", "--dicom", "--npy=false", "--previews=false")
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Recon.Method != "dps" || s.Prior != "p.safetensors" || s.Steps != 16 || s.CGIterations != 4 || s.Samples != 3 ||
		s.Covariance != "diagonal" || s.StepVariance != "posterior" || !s.Antithetic || !cfg.Output.DICOM || cfg.Output.NPY || cfg.Output.Previews {
		t.Fatalf("flags not applied: %+v %+v", cfg.Recon, cfg.Output)
	}
	if err := applyFlags(t, cfg, "--step-variance", "ddpm", "--jacobian-sigma", "0.02,0.5"); err != nil || fmt.Sprint(s.JacobianSigma) != "[0.02 0.5]" {
		t.Fatalf("--jacobian-sigma 0.02,0.5: %v, err %v", s.JacobianSigma, err)
	}
	// An empty --prior given on the command line means the built-in prior.
	if err := applyFlags(t, cfg, "--prior", ""); err != nil || s.Prior != "" {
		t.Fatalf("--prior '': prior %q, err %v", s.Prior, err)
	}
}

// A flag value the config rejects is a usage error naming the problem.
func TestReconFlagsInvalid(t *testing.T) {
	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{"--method", "sense"}, `--method "sense"`},
		{[]string{"--samples", "0"}, "recon.sampler.samples"},
		{[]string{"--cg", "101"}, "recon.sampler.cg_iterations"},
		{[]string{"--covariance", "full"}, "recon.sampler.covariance"},
		{[]string{"--step-variance", "full"}, "recon.sampler.step_variance"},
		{[]string{"--jacobian-sigma", "1,0.5"}, "recon.sampler.jacobian_sigma"},
		{[]string{"--jacobian-sigma", "0.1"}, "recon.sampler.jacobian_sigma"},
		{[]string{"--jacobian-sigma", "0.01,1", "--step-variance", "posterior"}, "recon.sampler.jacobian_sigma"},
		{[]string{"--steps", "-1"}, "recon.sampler.steps"},
		{[]string{"--device", "tpu"}, "recon.device"},
	} {
		err := applyFlags(t, configs.Default(), c.args...)
		var ue usageError
		if !errors.As(err, &ue) || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%v: error %v, want a usage error naming %s", c.args, err, c.want)
		}
	}
}

// Each command merges its flags through reconFlags: a bad value is a usage
// error before any work starts.
func TestReconFlagsPerCommand(t *testing.T) {
	dir := t.TempDir()
	for _, args := range [][]string{
		{"recon", "--samples", "0", "--out", dir, "in.h5"},
		{"recon", "--method", "sense", "--out", dir, "in.h5"},
		{"bench", "quality", "--covariance", "full", "--test", dir},
		{"qc", "--method", "sense", "in.h5"},
		{"batch", "--prior", "p", "--method", "sense", "--in", dir, "--out", dir},
		{"slurm", "batch", "--method", "sense", "--in", dir, "--out", dir, "--submit=false"},
	} {
		var stderr strings.Builder
		if code := execute(newRootCmd(), args, &stderr); code != exitUsage || !strings.Contains(stderr.String(), "recon.sampler") && !strings.Contains(stderr.String(), "--method") {
			t.Errorf("kspaced %v: exit %d, want %d (%s)", args, code, exitUsage, stderr.String())
		}
	}
}

// config reads --config and lays the given flags over it.
func TestReconFlagsConfigFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "c.yaml")
	if err := os.WriteFile(path, []byte("recon:\n  method: mmps\n  sampler:\n    samples: 5\n    steps: 48\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		args           []string
		samples, steps int
	}{
		{nil, 5, 48},
		{[]string{"--samples", "3"}, 3, 48},
	} {
		var rf reconFlags
		cmd := &cobra.Command{Use: "x"}
		cmd.Flags().StringVar(&rf.cfgPath, "config", "", "")
		rf.registerSampler(cmd)
		if err := cmd.Flags().Parse(append([]string{"--config", path}, c.args...)); err != nil {
			t.Fatal(err)
		}
		cfg, err := rf.config(cmd)
		if err != nil {
			t.Fatal(err)
		}
		if s := cfg.Recon.Sampler; cfg.Recon.Method != "mmps" || s.Samples != c.samples || s.Steps != c.steps {
			t.Errorf("%v: method %s, %d samples, %d steps; want mmps, %d, %d", c.args, cfg.Recon.Method, s.Samples, s.Steps, c.samples, c.steps)
		}
	}
}
