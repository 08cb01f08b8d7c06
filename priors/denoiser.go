// Package priors holds kspaced's diffusion priors: the Denoiser interface,
// the U-Net and its architectures by name (Network), its training (Train),
// the Gaussian prior, the noise schedule (Sigma) and the checkpoint format.
// Sampling the posterior under a prior is package posterior; learning one
// from corrupted scans is package retrain.
package priors

// Denoiser estimates E[x | x_t] under the variance-exploding diffusion
// x_t = x + σ z, for images of Shape() laid out [n][channels][rows][cols]
// (complex images are two channels: real, imaginary).
type Denoiser interface {
	Shape() (channels, rows, cols int)
	// Denoise writes d(x_t, σ_i) for len(sigma) images of xt into dst.
	Denoise(dst, xt, sigma []float32) error
	// DenoiseVJP does the same and returns vjp computing dst = vᵀ·∂d/∂x_t at
	// that point, callable many times (MMPS calls it once per CG iteration)
	// until the next call on this Denoiser. The Jacobian is never materialised.
	DenoiseVJP(dst, xt, sigma []float32) (vjp func(dst, v []float32) error, err error)
}
