// Package posterior draws samples of an image given undersampled k-space
// under a diffusion prior: MMPS (moment-matching posterior sampling, the
// production method) and DPS (the baseline) plugged into a DDPM or DDIM
// sampler on the time grid of TimeGrid (MMPS with the Jacobian covariance,
// CG over VJPs, or the prior's diagonal one, OCM: one denoiser and one head
// pass per step), and the sample statistics (mean and
// standard deviation) that become the reconstruction and its uncertainty
// map. It takes the measurement operator (mri.Operator) and any
// priors.Denoiser; it never reads files.
package posterior
