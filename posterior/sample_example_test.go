package posterior_test

import (
	"context"
	"fmt"
	"math/rand/v2"

	"github.com/kspaced/kspaced/mri"
	"github.com/kspaced/kspaced/posterior"
	"github.com/kspaced/kspaced/priors"
)

// Reconstruct a single-coil 16×16 slice sampled on every other line under a
// diagonal Gaussian prior, with 8 posterior samples as one batch.
func ExampleSamplePosterior() {
	const rows, cols = 16, 16
	hw := rows * cols
	mu, diag := make([]float32, 2*hw), make([]float32, 2*hw)
	for i := range diag {
		diag[i] = 0.1
	}
	prior, err := priors.NewGaussian(mu, diag, nil, 2, rows, cols)
	if err != nil {
		panic(err)
	}
	maps, mask := make([]complex64, hw), make([]float32, hw)
	for i := range maps {
		maps[i] = 1
		if (i/cols)%2 == 0 {
			mask[i] = 1
		}
	}
	A := mri.NewSENSE(maps, 1, rows, cols, mask)

	// Measure an image drawn from the prior, with complex noise E|n|² = 1e-3.
	rng := rand.New(rand.NewPCG(1, 2))
	x := make([]float32, 2*hw)
	if err := prior.Sample(x, rng); err != nil {
		panic(err)
	}
	img := make([]complex64, hw)
	if err := posterior.ChannelsToComplex(img, x, hw); err != nil {
		panic(err)
	}
	y := make([]complex64, A.OutLen())
	A.Forward(y, img)
	for i := range y {
		if mask[i] != 0 {
			y[i] += complex(float32(0.022*rng.NormFloat64()), float32(0.022*rng.NormFloat64()))
		}
	}

	post, err := posterior.SamplePosterior(context.Background(), prior, A, y, posterior.SampleOptions{
		Method: "mmps", Steps: 64, CGIter: 2, Samples: 8, NoiseVar: 1e-3, Seed: 3})
	if err != nil {
		panic(err)
	}
	fmt.Printf("%d samples of %d×%d, %d denoiser evaluations and %d VJPs per sample\n",
		len(post.Samples)/hw, post.Rows, post.Cols, post.DenoiserEvals, post.VJPs)
	fmt.Println("mean consistent with the data:", post.Residual < 0.1)
	// Output:
	// 8 samples of 16×16, 64 denoiser evaluations and 128 VJPs per sample
	// mean consistent with the data: true
}
