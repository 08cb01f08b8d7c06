// Package qc measures whether one reconstructed slice (and a series of
// them) can be trusted, and turns the measures into flags with plain-words
// reasons for the people reading the images.
//
// Measures, each with a documented meaning (line motion and edge sparsity
// are calibrated per method like data consistency):
//
//   - data consistency: ‖y − A x̂‖² / σ² over the m sampled complex
//     measurements, reported as the ratio ‖r‖²/(m σ²). For a fixed x̂ and
//     complex Gaussian noise of per-sample variance σ², 2‖r‖²/σ² ~ χ²(2m), so
//     the ratio is about 1. A reconstruction fitted to the data absorbs part
//     of the noise (ratio below 1) and keeps model error in proportion to
//     the signal (ratio above 1 at high SNR), so the expected value and the
//     flag threshold are calibrated per method on in-distribution scans,
//     against acceleration and SNR (Calibration); only the upper tail is
//     flagged. Per-line residuals tell motion (a subset of inconsistent
//     phase-encode lines) from coil-map or mask errors (residual in
//     proportion to each line's signal), and sampled lines holding no data at
//     all reveal a mask that lies.
//   - line motion: the share of the residual that a translation fitted to
//     each sampled line (a linear phase along it, a constant phase across)
//     removes: what a patient moving between lines leaves (LineMotion).
//   - edge sparsity: how piecewise constant the object is (gradient q90/q25
//     over the foreground): phantoms are flat regions and sharp edges, a
//     head is textured (EdgeSparsity).
//   - noise: when the noise covariance was declared (a noise scan), the
//     level the data themselves show (mri.EstimateNoise) over the declared one.
//   - prior typicality: the prior's denoising error on the reconstruction at
//     fixed noise levels and fixed noise draws (a one-sample estimate of the
//     denoising-loss terms of the diffusion ELBO), as a percentile of
//     in-distribution scans of the same acceleration and SNR
//     (Calibration.Typicality).
//   - uncertainty: the foreground mean of the posterior std over the
//     foreground mean magnitude (sampling methods only).
//
// qc imports mri and priors; it knows nothing of jobs, files or daemons.
package qc
