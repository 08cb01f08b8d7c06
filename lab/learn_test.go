package lab

import (
	"context"
	"math"
	"math/rand/v2"
	"os"
	"testing"
	"time"

	"gonum.org/v1/gonum/mat"

	"github.com/kspaced/kspaced/internal/testutil"
	"github.com/kspaced/kspaced/priors"
)

// The PCA/Wiener baseline against the dense posterior mean
// μ + (Σ+δI)·(Σ+δI+σ²I)⁻¹·(x_t−μ) with Σ the sample covariance.
func TestPCAWienerMatchesDense(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	ds := &priors.SliceDataset{C: 1, H: 3, W: 4}
	d, n := 12, 7
	for i := 0; i < n*d; i++ {
		ds.Data = append(ds.Data, float32(r.NormFloat64()+0.3*float64(i%d)))
	}
	p, err := fitPCAWiener(ds)
	if err != nil {
		t.Fatal(err)
	}
	mu := make([]float64, d)
	for i := 0; i < n; i++ {
		for k := 0; k < d; k++ {
			mu[k] += float64(ds.Data[i*d+k]) / float64(n)
		}
	}
	xt := make([]float32, 2*d)
	for k := range xt {
		xt[k] = float32(2 * r.NormFloat64())
	}
	for _, delta := range []float64{0, 0.01, 0.5} {
		const sigma = 0.7
		cov := mat.NewSymDense(d, nil)
		for a := 0; a < d; a++ {
			for b := 0; b < d; b++ {
				var s float64
				for i := 0; i < n; i++ {
					s += (float64(ds.Data[i*d+a]) - mu[a]) * (float64(ds.Data[i*d+b]) - mu[b])
				}
				s /= float64(n)
				if a == b {
					s += delta
				}
				cov.SetSym(a, b, s)
			}
		}
		var noisy mat.Dense
		noisy.CloneFrom(cov)
		for a := 0; a < d; a++ {
			noisy.Set(a, a, noisy.At(a, a)+sigma*sigma)
		}
		got := p.denoise(xt, sigma, delta)
		for img := 0; img < 2; img++ {
			y := mat.NewVecDense(d, nil)
			for k := 0; k < d; k++ {
				y.SetVec(k, float64(xt[img*d+k])-mu[k])
			}
			var sol, want mat.VecDense
			if err := sol.SolveVec(&noisy, y); err != nil {
				t.Fatal(err)
			}
			want.MulVec(cov, &sol)
			for k := 0; k < d; k++ {
				if e := math.Abs(float64(got[img*d+k]) - (mu[k] + want.AtVec(k))); e > 1e-4 {
					t.Fatalf("δ=%g image %d value %d: %g, dense %g", delta, img, k, got[img*d+k], mu[k]+want.AtVec(k))
				}
			}
		}
	}
}

func TestEvidenceDataFromMRIcron(t *testing.T) {
	for _, p := range DefaultEvidenceVolumes {
		testutil.File(t, p)
	}
	train, held, err := evidenceData(LearnOptions{Volumes: DefaultEvidenceVolumes, Size: 32, Copies: 1, Seed: 1})
	if err != nil {
		t.Fatal(err)
	}
	if train.Len() < 100 || held.Len() != 16 {
		t.Fatalf("%d training and %d held-out slices", train.Len(), held.Len())
	}
	var peak float64
	per := 32 * 32
	for i := 0; i < train.Len(); i++ {
		for k := 0; k < per; k++ {
			re, im := float64(train.Data[i*2*per+k]), float64(train.Data[i*2*per+per+k])
			peak = math.Max(peak, math.Hypot(re, im))
		}
	}
	if peak < 0.9 || peak > 2 {
		t.Errorf("normalised peak magnitude %g", peak)
	}
}

// TestLearnEvidence is the full learning evidence run of docs/bench/engine.md
// (about an hour): set KSPACED_EVIDENCE=1, and KSPACED_EVIDENCE_BUDGET (a
// duration) to change the training time from the 55 minutes the U-Net needed
// on two cores to win at σ = 1; KSPACED_EVIDENCE_CHECKPOINT names a file for
// the weights.
func TestLearnEvidence(t *testing.T) {
	if os.Getenv("KSPACED_EVIDENCE") != "1" {
		t.Skip("set KSPACED_EVIDENCE=1 to run the learning evidence")
	}
	for _, p := range DefaultEvidenceVolumes {
		testutil.File(t, p)
	}
	budget := 55 * time.Minute
	if s := os.Getenv("KSPACED_EVIDENCE_BUDGET"); s != "" {
		var err error
		if budget, err = time.ParseDuration(s); err != nil {
			t.Fatal(err)
		}
	}
	res, err := LearnEvidence(context.Background(), LearnOptions{Budget: budget, Seed: 1,
		Checkpoint: os.Getenv("KSPACED_EVIDENCE_CHECKPOINT")}, os.Stderr)
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range res.Rows {
		if !(r.UNet < r.Gaussian) {
			t.Errorf("σ=%g: U-Net MSE %.5g does not beat the Gaussian %.5g", r.Sigma, r.UNet, r.Gaussian)
		}
	}
}
