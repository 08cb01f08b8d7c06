// Package priors holds kspaced's diffusion priors: the denoiser network and
// its training, the Gaussian prior, and the posterior samplers that use them.
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
