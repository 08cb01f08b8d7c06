package retrain

import (
	"context"
	"slices"
	"testing"

	"github.com/kspaced/kspaced/posterior"
	"github.com/kspaced/kspaced/priors"
)

// TestEStepSamplesLayout: pass 0 of a multi-sample E-step is exactly the
// single-sample E-step; pass 1 is a different draw of the same posteriors.
func TestEStepSamplesLayout(t *testing.T) {
	obs := emObservations(t, 3, 16, 2, 3, 0.02, 5)
	const n = 2 * 16 * 16
	diag := make([]float32, n)
	for i := range diag {
		diag[i] = 0.1
	}
	g, err := priors.NewGaussian(make([]float32, n), diag, nil, 2, 16, 16)
	if err != nil {
		t.Fatal(err)
	}
	so := posterior.SampleOptions{Seed: 9}
	one := make([]float32, 3*n)
	if err := EStep(context.Background(), g, obs, so, 1, one, nil); err != nil {
		t.Fatal(err)
	}
	two := make([]float32, 2*3*n)
	var last int
	if err := eStepSamplesOf(context.Background(), g, obs, nil, so, 1, 2, two, func(done, total int) { last = done * 100 / total }); err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(two[:3*n], one) {
		t.Fatal("pass 0 differs from the single-sample E-step")
	}
	if slices.Equal(two[3*n:], one) {
		t.Fatal("pass 1 repeats pass 0")
	}
	if last != 100 {
		t.Fatalf("progress ended at %d%%", last)
	}
	if err := eStepSamplesOf(context.Background(), g, obs, nil, so, 1, 2, make([]float32, 5), nil); err == nil {
		t.Fatal("wrong buffer length accepted")
	}
}
