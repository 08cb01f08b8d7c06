package main

import (
	"bytes"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/kspaced/kspaced/mri/kspaceio"
	"github.com/kspaced/kspaced/priors"
)

func runFitCovariance(t *testing.T, args ...string) (string, error) {
	t.Helper()
	return runCommand(t, newFitCovarianceCmd(), args...)
}

// fitCovarianceFixture writes a tiny 16×16 U-Net prior and a folder of two
// random complex images (and a _truth companion) into dir.
func fitCovarianceFixture(t *testing.T, dir string) (prior, data string) {
	t.Helper()
	cfg, err := priors.Network("tiny", 16, 16)
	if err != nil {
		t.Fatal(err)
	}
	u, err := priors.NewUNet(cfg, 1)
	if err != nil {
		t.Fatal(err)
	}
	prior = filepath.Join(dir, "unet.safetensors")
	if err := u.Save(prior, priors.CheckpointMeta{}); err != nil {
		t.Fatal(err)
	}
	data = filepath.Join(dir, "data")
	if err := os.Mkdir(data, 0o755); err != nil {
		t.Fatal(err)
	}
	rng := rand.New(rand.NewPCG(1, 2))
	for _, name := range []string{"a.npy", "b.npy", "c_truth.npy"} {
		img := make([]complex64, 16*16)
		for i := range img {
			img[i] = complex(float32(rng.NormFloat64()), float32(rng.NormFloat64()))
		}
		if err := kspaceio.WriteNPYComplex64(filepath.Join(data, name), []int{16, 16}, img); err != nil {
			t.Fatal(err)
		}
	}
	return prior, data
}

// fit-covariance refuses what it cannot use, and on a small U-Net prior
// and a folder of .npy images writes the prior with a head that loads.
func TestFitCovarianceCommand(t *testing.T) {
	dir := t.TempDir()
	gauss := filepath.Join(dir, "gauss.safetensors")
	g, err := priors.NewGaussian(make([]float32, 2*16*16), make([]float32, 2*16*16), nil, 2, 16, 16)
	if err != nil {
		t.Fatal(err)
	}
	if err := priors.SaveGaussian(gauss, g, priors.GaussianMeta{}); err != nil {
		t.Fatal(err)
	}
	prior, data := fitCovarianceFixture(t, dir)
	out := filepath.Join(dir, "with-head.safetensors")
	for name, args := range map[string][]string{
		"no prior":       {"--data", data, "--out", out},
		"gaussian prior": {"--prior", gauss, "--data", data, "--out", out},
		"bad network":    {"--prior", prior, "--data", data, "--out", out, "--network", "huge"},
	} {
		if _, err := runFitCovariance(t, args...); err == nil || !isUsage(err) {
			t.Errorf("%s: error %v is not a usage error", name, err)
		}
	}
	msg, err := runFitCovariance(t, "--prior", prior, "--data", data, "--out", out, "--steps", "3", "--batch", "2", "--crop", "8", "--network", "tiny")
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(msg, "step 3 of 3") {
		t.Errorf("output %q", msg)
	}
	_, info, err := priors.LoadPrior(out)
	if err != nil {
		t.Fatal(err)
	}
	if c := info.Covariance; c == nil || c.Network != "tiny" || c.Provenance.Images != 2 || c.Provenance.Steps != 3 {
		t.Errorf("head metadata %+v (want tiny, 2 images without the truth, 3 steps)", info.Covariance)
	}
}

// kill -9 of fit-covariance after its first checkpoint, then the same
// command again: it resumes from the checkpoint and writes the very bytes
// of an uninterrupted run.
func TestFitCovarianceSurvivesKill(t *testing.T) {
	dir := t.TempDir()
	prior, data := fitCovarianceFixture(t, dir)
	fit := func(out string) *exec.Cmd {
		return exec.Command(kspacedBin, "prior", "fit-covariance", "--prior", prior, "--data", data, "--out", out,
			"--steps", "300", "--batch", "2", "--crop", "8", "--network", "tiny", "--checkpoint-every", "20")
	}
	whole, cut := filepath.Join(dir, "whole.safetensors"), filepath.Join(dir, "cut.safetensors")
	if out, err := fit(whole).CombinedOutput(); err != nil {
		t.Fatalf("uninterrupted run: %v\n%s", err, out)
	}
	killWhen(t, fit(cut), time.Minute, "the first checkpoint", func() bool {
		_, err := os.Stat(cut)
		return err == nil
	})
	out, err := fit(cut).Output()
	if err != nil {
		t.Fatalf("restart: %v", err)
	}
	var from int
	if i := strings.Index(string(out), "(from "); i < 0 {
		t.Fatalf("restart printed %q", out)
	} else if _, err := fmt.Sscanf(string(out[i:]), "(from %d)", &from); err != nil || from <= 0 || from >= 300 {
		t.Fatalf("restart resumed from step %d (%v), want a checkpoint inside the run: %q", from, err, out)
	}
	a, err := os.ReadFile(whole)
	if err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(cut)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(a, b) {
		t.Errorf("resumed from step %d: the checkpoint (%d bytes) differs from the uninterrupted run's (%d bytes)", from, len(b), len(a))
	}
}
