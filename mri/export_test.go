package mri

// Internals the external (mri_test) tests use; they live there because they
// import mri/kspaceio, which imports mri.
var (
	RadialDensity  = radialDensity
	MeanNNDistance = meanNNDistance
	CountMask      = countMask
)

// Calibration-matrix noise internals (noise_calib.go).
var (
	NoiseFromCalibration = noiseFromCalibration
	CalibEigenvalues     = calibEigenvalues
	MPNoise              = mpNoise
	CentreBlock          = centreBlock
)
