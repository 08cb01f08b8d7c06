package retrain

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/kspaced/kspaced/configs"
	"github.com/kspaced/kspaced/mri/kspaceio"
	"github.com/kspaced/kspaced/mri/simulate"
	"github.com/kspaced/kspaced/pipeline"
	"github.com/kspaced/kspaced/priors"
)

// writeArchive simulates `slices` ellipse phantoms of size×size with 2
// coils into dir/NAME.h5 with NAME_truth.npy, as `kspaced simulate` does.
func writeArchive(t testing.TB, dir, name string, slices, size int, seed uint64) {
	t.Helper()
	sm := configs.Default().Simulate
	sm.Rows, sm.Cols, sm.Coils, sm.CenterFraction, sm.Noise, sm.Seed = size, size, 2, 0.125, 0.01, seed
	sim, err := simulate.Acquire(simulate.Options{Source: "ellipses", Slices: slices, Sim: sm})
	if err != nil {
		t.Fatal(err)
	}
	base := filepath.Join(dir, name)
	if err := kspaceio.WriteFastMRI(base+".h5", sim.Volume); err != nil {
		t.Fatal(err)
	}
	if err := kspaceio.WriteNPYComplex64(base+"_truth.npy", []int{slices, size, size}, sim.Truth); err != nil {
		t.Fatal(err)
	}
}

func tinyRetrainConfig() *configs.Config {
	cfg := configs.Default()
	r := &cfg.Retrain
	r.Laps, r.GaussianLaps, r.Rank, r.GaussianSamples = 1, 2, 2, 1
	r.Steps, r.CGIterations, r.TrainSteps, r.BatchSize, r.WarmupSteps = 8, 1, 20, 4, 0
	r.Network, r.ValFraction, r.EvalSamples, r.Workers = "tiny", 0.2, 1, 2
	return cfg
}

func TestRetrainArchive(t *testing.T) {
	dir := t.TempDir()
	data := filepath.Join(dir, "archive")
	if err := os.MkdirAll(filepath.Join(data, "sub"), 0o755); err != nil {
		t.Fatal(err)
	}
	writeArchive(t, data, "a", 8, 32, 1)
	writeArchive(t, filepath.Join(data, "sub"), "b", 7, 32, 2)
	// Neither k-space nor readable: skipped with a warning each.
	if err := os.WriteFile(filepath.Join(data, "notes.txt"), []byte("hello"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(data, "broken.h5"), []byte("\x89HDF\r\n\x1a\nbroken"), 0o644); err != nil {
		t.Fatal(err)
	}
	var log strings.Builder
	out := filepath.Join(dir, "prior")
	res, err := Retrain(context.Background(), RetrainOptions{Data: []string{data}, Out: out, Config: tinyRetrainConfig(), Log: &log})
	if err != nil {
		t.Fatalf("%v\n%s", err, log.String())
	}
	t.Logf("\n%s", log.String())
	if res.Train+res.Validation != 15 || res.Validation != 3 || len(res.Laps) != 2 {
		t.Fatalf("result %+v", res)
	}
	if len(res.Skipped) != 2 || !strings.Contains(strings.Join(res.Skipped, "\n"), "notes.txt") ||
		!strings.Contains(strings.Join(res.Skipped, "\n"), "broken.h5") {
		t.Fatalf("skipped %q", res.Skipped)
	}
	for _, r := range res.Laps {
		if v := r.Validation; v.N != 3 || v.WithTruth != 3 || !(v.PSNR > 10) || !(v.DataConsistency > 0) {
			t.Errorf("lap %d validation %+v: truth not picked up", r.Lap, v)
		}
	}
	// retrain hands over the lap marked best (best.safetensors), not the newest.
	best := -1
	for i, r := range res.Laps {
		if r.Best {
			best = i
		}
	}
	if best < 0 || res.Prior != filepath.Join(out, BestCheckpoint) {
		t.Fatalf("prior %s, best lap %d", res.Prior, best)
	}
	d, info, err := priors.LoadPrior(res.Prior)
	if err != nil || info.Normalisation.Scheme != pipeline.NormalisationScheme || info.Provenance.EMLap != best {
		t.Fatalf("final prior %s: %v %+v (best lap %d)", res.Prior, err, info, best)
	}
	if c, h, w := d.Shape(); c != 2 || h != 32 || w != 32 {
		t.Fatalf("prior shape %d×%d×%d", c, h, w)
	}
	// The Gaussian lap-0 prior reconstructs through the same operator
	// recon builds (pipeline.Prepare), from a scan not in the archive.
	if _, info, err := priors.LoadPrior(filepath.Join(out, LapCheckpoint(0))); err != nil || info.Kind != priors.KindGaussian ||
		info.Normalisation.Scheme != pipeline.NormalisationScheme {
		t.Fatalf("lap 0: %v %+v", err, info)
	}
}

func TestRetrainBadData(t *testing.T) {
	dir := t.TempDir()
	cfg := tinyRetrainConfig()
	run := func(paths ...string) error {
		_, err := Retrain(context.Background(), RetrainOptions{Data: paths, Out: filepath.Join(dir, "out"), Config: cfg})
		return err
	}
	empty := filepath.Join(dir, "empty")
	if err := os.Mkdir(empty, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := run(empty); !errors.Is(err, pipeline.ErrBadInput) || !strings.Contains(err.Error(), "no files") {
		t.Errorf("empty folder: %v", err)
	}
	junk := filepath.Join(dir, "junk")
	if err := os.Mkdir(junk, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(junk, "x.dat"), []byte("not k-space"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := run(junk); !errors.Is(err, pipeline.ErrBadInput) || !strings.Contains(err.Error(), "no usable k-space") || !strings.Contains(err.Error(), "x.dat") {
		t.Errorf("junk only: %v", err)
	}
	if err := run(filepath.Join(dir, "missing")); !errors.Is(err, pipeline.ErrBadInput) {
		t.Errorf("missing folder: %v", err)
	}
	mixed := filepath.Join(dir, "mixed")
	if err := os.Mkdir(mixed, 0o755); err != nil {
		t.Fatal(err)
	}
	writeArchive(t, mixed, "small", 2, 32, 1)
	writeArchive(t, mixed, "large", 2, 48, 2)
	err := run(mixed)
	if !errors.Is(err, pipeline.ErrBadInput) || !strings.Contains(err.Error(), "32×32") || !strings.Contains(err.Error(), "48×48") ||
		!strings.Contains(err.Error(), "large.h5") {
		t.Errorf("mixed sizes: %v", err)
	}
	// Too few scans for the Gaussian's rank.
	few := filepath.Join(dir, "few")
	if err := os.Mkdir(few, 0o755); err != nil {
		t.Fatal(err)
	}
	writeArchive(t, few, "f", 3, 32, 3)
	if err := run(few); !errors.Is(err, pipeline.ErrBadInput) || !strings.Contains(err.Error(), "rank") {
		t.Errorf("too few scans: %v", err)
	}
}

func TestSplitObservations(t *testing.T) {
	obs := make([]Observation, 20)
	for i := range obs {
		obs[i].Name = fmt.Sprint(i)
	}
	tr, va := SplitObservations(obs, 0.25, 7)
	tr2, va2 := SplitObservations(obs, 0.25, 7)
	if len(tr) != 15 || len(va) != 5 || fmt.Sprint(va) != fmt.Sprint(va2) || fmt.Sprint(tr) != fmt.Sprint(tr2) {
		t.Fatalf("split %d/%d, not reproducible", len(tr), len(va))
	}
	seen := map[string]bool{}
	for _, o := range append(tr, va...) {
		seen[o.Name] = true
	}
	if len(seen) != 20 {
		t.Fatal("split lost or duplicated observations")
	}
	if _, v := SplitObservations(obs[:1], 0.9, 1); len(v) != 0 {
		t.Fatal("split left nothing to train on")
	}
}

// The kill test re-runs this test binary as a helper that retrains; the
// parent kills it with SIGKILL in the middle of lap 1's M-step, starts it
// again and checks the run continues where it stopped.
const retrainHelperEnv = "KSPACED_RETRAIN_HELPER"

func TestRetrainHelperProcess(t *testing.T) {
	spec := os.Getenv(retrainHelperEnv)
	if spec == "" {
		t.Skip("helper process for TestRetrainSurvivesKill")
	}
	data, out, _ := strings.Cut(spec, "|")
	cfg := tinyRetrainConfig()
	cfg.Retrain.TrainSteps = 400
	if _, err := Retrain(context.Background(), RetrainOptions{Data: []string{data}, Out: out, Config: cfg, Log: os.Stderr}); err != nil {
		fmt.Fprintln(os.Stderr, "retrain:", err)
		os.Exit(1)
	}
	os.Exit(0)
}

func TestRetrainSurvivesKill(t *testing.T) {
	dir := t.TempDir()
	data := filepath.Join(dir, "archive")
	if err := os.Mkdir(data, 0o755); err != nil {
		t.Fatal(err)
	}
	writeArchive(t, data, "a", 12, 32, 5)
	out := filepath.Join(dir, "prior")
	helper := func() *exec.Cmd {
		c := exec.Command(os.Args[0], "-test.run=^TestRetrainHelperProcess$", "-test.count=1")
		c.Env = append(os.Environ(), retrainHelperEnv+"="+data+"|"+out)
		return c
	}
	first := helper()
	var stderr strings.Builder
	first.Stderr = &stderr
	if err := first.Start(); err != nil {
		t.Fatal(err)
	}
	trainCkpt := filepath.Join(out, "lap-01.train.safetensors")
	deadline := time.Now().Add(90 * time.Second)
	for {
		if _, err := os.Stat(trainCkpt); err == nil {
			break
		}
		if time.Now().After(deadline) {
			_ = first.Process.Kill()
			t.Fatalf("no M-step checkpoint appeared\n%s", stderr.String())
		}
		time.Sleep(10 * time.Millisecond)
	}
	if err := first.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	_ = first.Wait()
	var before []LapRecord
	raw, err := os.ReadFile(filepath.Join(out, "laps.json"))
	if err != nil || json.Unmarshal(raw, &before) != nil || len(before) != 1 {
		t.Fatalf("after the kill, laps.json: %v\n%s", err, raw)
	}
	if _, err := os.Stat(filepath.Join(out, "lap-01.samples.safetensors")); err != nil {
		t.Fatalf("E-step samples not saved before the M-step: %v", err)
	}
	second := helper()
	combined, err := second.CombinedOutput()
	if err != nil {
		t.Fatalf("restart: %v\n%s", err, combined)
	}
	t.Logf("first run:\n%s\nrestart:\n%s", stderr.String(), combined)
	var after []LapRecord
	raw, err = os.ReadFile(filepath.Join(out, "laps.json"))
	if err != nil || json.Unmarshal(raw, &after) != nil || len(after) != 2 {
		t.Fatalf("after the restart, laps.json: %v\n%s", err, raw)
	}
	if !after[0].Finished.Equal(before[0].Finished) {
		t.Error("lap 0 was recomputed")
	}
	if !after[1].EStepResumed || !after[1].MStepResumed || after[1].MStepSteps != 400 {
		t.Errorf("lap 1 did not continue from the saved E-step and M-step: %+v", after[1])
	}
	if !strings.Contains(string(combined), "resuming after lap 0") {
		t.Errorf("restart did not say it resumed:\n%s", combined)
	}
	left, _ := filepath.Glob(filepath.Join(out, ".*"))
	if len(left) > 0 {
		t.Errorf("temporary files left: %v", left)
	}
}
