package lab

import (
	"context"
	"math"
	"math/rand/v2"
	"path/filepath"
	"testing"

	"github.com/kspaced/kspaced/priors"
	"github.com/kspaced/kspaced/retrain"
)

// TestTrainCleanContinues: a continued reference trains only the steps it
// lacks, from its start's weights, and its checkpoint counts all of them.
func TestTrainCleanContinues(t *testing.T) {
	cfg, err := priors.Network("tiny", 16, 16)
	if err != nil {
		t.Fatal(err)
	}
	rc := EMEvidenceConfig().Retrain
	rc.BatchSize, rc.WarmupSteps, rc.Crop, rc.Scales = 2, 0, 0, []float64{1}
	rng := rand.New(rand.NewPCG(3, 4))
	obs := make([]retrain.Observation, 4)
	for i := range obs {
		truth := make([]complex64, 16*16)
		for j := range truth {
			truth[j] = complex(float32(rng.NormFloat64()), float32(rng.NormFloat64()))
		}
		obs[i] = retrain.Observation{Name: "scan", Truth: truth, Scale: 2}
	}
	start, err := priors.NewUNet(cfg, 7)
	if err != nil {
		t.Fatal(err)
	}
	before := weights(start)
	path := filepath.Join(t.TempDir(), "ref.safetensors")
	if err := trainClean(context.Background(), obs, cfg, start, 10, rc, 13, path, nil); err != nil {
		t.Fatal(err)
	}
	got, meta, err := priors.LoadUNet(path)
	if err != nil {
		t.Fatal(err)
	}
	if meta.Provenance.Steps != 13 || meta.Provenance.Seed != rc.Seed+1000+10 {
		t.Errorf("checkpoint counts %d steps with seed %d, want 13 and the continuation's %d", meta.Provenance.Steps, meta.Provenance.Seed, rc.Seed+1000+10)
	}
	fresh, err := priors.NewUNet(cfg, rc.Seed) // where training from scratch starts
	if err != nil {
		t.Fatal(err)
	}
	after := weights(got)
	moved, fromFresh := distance(after, before), distance(after, weights(fresh))
	if !(moved > 0) || !(moved < 0.1*fromFresh) {
		t.Errorf("3 steps moved the weights %g from the start, and they are %g from a fresh network", moved, fromFresh)
	}
}

func weights(u *priors.UNet) []float32 {
	var w []float32
	for _, p := range u.Params() {
		w = append(w, p.Value.Host...) // a copy: training changes the net in place
	}
	return w
}

func distance(a, b []float32) float64 {
	s := 0.0
	for i := range a {
		d := float64(a[i] - b[i])
		s += d * d
	}
	return math.Sqrt(s)
}
