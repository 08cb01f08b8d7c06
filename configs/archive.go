package configs

import "errors"

// Archive configures `kspaced simulate archive`: a simulated hospital archive
// of undersampled multi-coil scans of real anatomy to learn a prior from,
// and held-out test scans. Ranges [lo, hi] are drawn per scan.
type Archive struct {
	Volumes []string `yaml:"volumes"` // ch2, ch2better (Debian mricron-data) or NIfTI paths
	Matrix  int      `yaml:"matrix"`  // training scans are matrix × matrix (EM needs one size)
	// Stride takes every stride-th slice with anatomy along each axis.
	Stride          int        `yaml:"stride"`
	PixelMM         [2]float64 `yaml:"pixel_mm"`
	RotateDeg       float64    `yaml:"rotate_deg"` // uniform in ±rotate_deg
	Coils           []int      `yaml:"coils"`
	Masks           []string   `yaml:"masks"` // random | equispaced | poisson, drawn uniformly
	Acceleration    [2]float64 `yaml:"acceleration"`
	CenterFractions []float64  `yaml:"center_fractions"`
	Noise           [2]float64 `yaml:"noise"` // σ of the k-space noise, log-uniform, relative to the image peak
	// The held-out test slab: test_slab axial slices of each volume (every
	// other one becomes a test scan) and test_margin slices either side are
	// kept out of the axial training slices.
	TestSlab          int       `yaml:"test_slab"`
	TestMargin        int       `yaml:"test_margin"`
	TestMatrices      []int     `yaml:"test_matrices"`
	TestAccelerations []float64 `yaml:"test_accelerations"`
	TestNoise         float64   `yaml:"test_noise"`
	TestFOVmm         float64   `yaml:"test_fov_mm"`
	Seed              uint64    `yaml:"seed"`
}

// Validate checks an archive recipe (only `simulate archive` needs one).
func (a Archive) Validate() error {
	var v validator
	v.check(len(a.Volumes) > 0, "archive.volumes is empty")
	v.rangeI("archive.matrix", a.Matrix, 16, maxDim)
	v.rangeI("archive.stride", a.Stride, 1, 1000)
	v.check(a.PixelMM[0] > 0 && a.PixelMM[1] >= a.PixelMM[0] && a.PixelMM[1] <= 20, "archive.pixel_mm = %v, want 0 < lo ≤ hi ≤ 20", a.PixelMM)
	v.rangeF("archive.rotate_deg", a.RotateDeg, 0, 180)
	v.check(len(a.Coils) > 0, "archive.coils is empty")
	for _, c := range a.Coils {
		v.rangeI("archive.coils", c, 1, maxCoils)
	}
	v.check(len(a.Masks) > 0, "archive.masks is empty")
	for _, m := range a.Masks {
		v.oneOf("archive.masks", m, "random", "equispaced", "poisson")
	}
	v.check(a.Acceleration[0] >= 1 && a.Acceleration[1] >= a.Acceleration[0] && a.Acceleration[1] <= 64, "archive.acceleration = %v, want 1 ≤ lo ≤ hi ≤ 64", a.Acceleration)
	v.check(len(a.CenterFractions) > 0, "archive.center_fractions is empty")
	for _, f := range a.CenterFractions {
		v.check(f > 0 && f*a.Acceleration[1] < 1, "archive.center_fractions: %g × the highest acceleration must stay below 1", f)
	}
	v.check(a.Noise[0] > 0 && a.Noise[1] >= a.Noise[0] && a.Noise[1] <= 10, "archive.noise = %v, want 0 < lo ≤ hi ≤ 10", a.Noise)
	v.rangeI("archive.test_slab", a.TestSlab, 0, 1000)
	v.rangeI("archive.test_margin", a.TestMargin, 0, 1000)
	for _, m := range a.TestMatrices {
		v.rangeI("archive.test_matrices", m, 16, maxDim)
	}
	for _, r := range a.TestAccelerations {
		v.rangeF("archive.test_accelerations", r, 1, 64)
	}
	if a.TestSlab > 0 {
		v.check(a.TestNoise > 0 && a.TestFOVmm > 0 && len(a.TestMatrices) > 0 && len(a.TestAccelerations) > 0,
			"archive.test_slab needs test_noise, test_fov_mm, test_matrices and test_accelerations")
	}
	return errors.Join(v.errs...)
}
