package simulate

import (
	"context"
	"fmt"
	"math"
	mrand "math/rand/v2"
	"os"
	"path/filepath"
	"strings"

	"github.com/kspaced/kspaced/configs"
	"github.com/kspaced/kspaced/mri"
	"github.com/kspaced/kspaced/mri/kspaceio"
)

// ArchiveResult counts what SimulateArchive wrote.
type ArchiveResult struct {
	Train, Test int
	TrainDir    string
	TestDirs    []string // one per test matrix × acceleration
}

// SimulateArchive writes a simulated hospital archive after the recipe a:
// out/train/*.h5 (one slice per fastMRI-style file, without a noise scan,
// NAME_truth.npy beside it for scoring only) from slices with anatomy of
// each volume in all three orientations, each with its own view (pixel
// size, rotation, flips), coil count, mask kind, acceleration, centre
// fraction, noise level and smooth phase; and out/test/mMATRIX-ACCELx/ with
// the held-out axial slab of each volume (random 1-D masks, 8 coils, fixed
// noise and field of view). The slab and its margins never appear among the
// axial training slices; coronal and sagittal slices do cross it.
func SimulateArchive(ctx context.Context, a configs.Archive, out string, progress func(done int)) (*ArchiveResult, error) {
	if err := a.Validate(); err != nil {
		return nil, err
	}
	res := &ArchiveResult{TrainDir: filepath.Join(out, "train")}
	if err := os.MkdirAll(res.TrainDir, 0o755); err != nil {
		return nil, fmt.Errorf("archive: %w", err)
	}
	rng := mrand.New(mrand.NewPCG(a.Seed, 0x61726368))
	for _, name := range a.Volumes {
		path := name
		if p, ok := Volumes[name]; ok {
			path = p
		}
		vol, err := ReadNIfTI(path)
		if err != nil {
			return nil, fmt.Errorf("archive: %w", err)
		}
		tag := strings.TrimSuffix(strings.TrimSuffix(filepath.Base(path), ".gz"), ".nii")
		lo, hi := testSlab(vol, a)
		for axis, an := range []string{"sagittal", "coronal", "axial"} {
			stride := a.Stride
			if axis != 2 {
				stride *= 2 // fewer oblique-to-the-slab slices: the axial set carries the test anatomy
			}
			for _, z := range withAnatomy(vol, axis) {
				if z%stride != 0 || (axis == 2 && z >= lo-a.TestMargin && z < hi+a.TestMargin) {
					continue
				}
				if err := ctx.Err(); err != nil {
					return res, err
				}
				v := View{Rows: a.Matrix, Cols: a.Matrix,
					PixelMM:   a.PixelMM[0] + (a.PixelMM[1]-a.PixelMM[0])*rng.Float64(),
					RotateDeg: a.RotateDeg * (2*rng.Float64() - 1), FlipRows: rng.IntN(2) == 1, FlipCols: rng.IntN(2) == 1}
				sm := configs.Simulate{Rows: a.Matrix, Cols: a.Matrix, Coils: a.Coils[rng.IntN(len(a.Coils))],
					Mask:           a.Masks[rng.IntN(len(a.Masks))],
					Acceleration:   a.Acceleration[0] + (a.Acceleration[1]-a.Acceleration[0])*rng.Float64(),
					CenterFraction: a.CenterFractions[rng.IntN(len(a.CenterFractions))],
					Noise:          a.Noise[0] * math.Pow(a.Noise[1]/a.Noise[0], rng.Float64()), Seed: rng.Uint64()}
				base := filepath.Join(res.TrainDir, fmt.Sprintf("%s_%s_%03d", tag, an, z))
				if err := writeArchiveScan(base, vol, axis, z, v, sm, rng); err != nil {
					return res, err
				}
				res.Train++
				if progress != nil {
					progress(res.Train + res.Test)
				}
			}
		}
		// Test scans: every other slice of the slab.
		for _, m := range a.TestMatrices {
			for _, acc := range a.TestAccelerations {
				dir := filepath.Join(out, "test", fmt.Sprintf("m%d-%gx", m, acc))
				if err := os.MkdirAll(dir, 0o755); err != nil {
					return res, fmt.Errorf("archive: %w", err)
				}
				if !containsStr(res.TestDirs, dir) {
					res.TestDirs = append(res.TestDirs, dir)
				}
				for z := lo; z < hi; z += 2 {
					v := View{Rows: m, Cols: m, PixelMM: a.TestFOVmm / float64(m)}
					sm := configs.Simulate{Rows: m, Cols: m, Coils: 8, Mask: "random", Acceleration: acc,
						CenterFraction: 0.08, Noise: a.TestNoise, Seed: a.Seed*7919 + uint64(z)}
					if err := writeArchiveScan(filepath.Join(dir, fmt.Sprintf("%s_axial_%03d", tag, z)), vol, 2, z, v, sm, rng); err != nil {
						return res, err
					}
					res.Test++
					if progress != nil {
						progress(res.Train + res.Test)
					}
				}
			}
		}
	}
	return res, nil
}

func containsStr(s []string, v string) bool {
	for _, x := range s {
		if x == v {
			return true
		}
	}
	return false
}

// testSlab is the held-out axial slab [lo, hi): test_slab slices centred a
// sixth of the anatomy above its middle (large brain sections).
func testSlab(vol *Volume, a configs.Archive) (int, int) {
	if a.TestSlab == 0 {
		return 0, 0
	}
	idx := withAnatomy(vol, 2)
	if len(idx) == 0 {
		return 0, 0
	}
	mid := idx[len(idx)/2] + len(idx)/6
	return mid - a.TestSlab/2, mid - a.TestSlab/2 + a.TestSlab
}

// withAnatomy lists the slices along axis whose mean is at least a quarter
// of the brightest slice's.
func withAnatomy(vol *Volume, axis int) []int {
	means := make([]float64, vol.Dims[axis])
	var top float64
	for z := range means {
		img, _, _ := vol.Slice(axis, z)
		var s float64
		for _, v := range img {
			s += math.Max(float64(v), 0)
		}
		means[z] = s / float64(max(len(img), 1))
		top = math.Max(top, means[z])
	}
	var idx []int
	for z, m := range means {
		if top > 0 && m >= top/4 {
			idx = append(idx, z)
		}
	}
	return idx
}

// writeArchiveScan simulates one slice and writes BASE.h5 (no noise
// covariance, like a fastMRI file) and BASE_truth.npy.
func writeArchiveScan(base string, vol *Volume, axis, z int, v View, sm configs.Simulate, rng *mrand.Rand) error {
	mag, err := Anatomy(vol, axis, z, v)
	if err != nil {
		return fmt.Errorf("archive %s: %w", base, err)
	}
	var peak float32
	for _, m := range mag {
		peak = max(peak, m)
	}
	if peak <= 0 {
		return fmt.Errorf("archive %s: empty view", base)
	}
	ph := SmoothPhase(v.Rows, v.Cols, rng)
	img := make([]complex64, len(mag))
	for i, m := range mag {
		s, c := math.Sincos(float64(ph[i]))
		r := float64(max(m, 0) / peak)
		img[i] = complex(float32(r*c), float32(r*s))
	}
	mask, err := simMask(sm, sm.Seed)
	if err != nil {
		return fmt.Errorf("archive %s: %w", base, err)
	}
	scan, err := KSpace(img, CoilMaps(sm.Coils, v.Rows, v.Cols), sm.Coils, v.Rows, v.Cols, mask, sm.Noise, rng)
	if err != nil {
		return fmt.Errorf("archive %s: %w", base, err)
	}
	scan.NoiseCov = nil // fastMRI files carry no noise scan: retrain estimates it
	meta := Meta(sm)
	meta.EncodedFOVmm = [3]float64{float64(v.Rows) * v.PixelMM, float64(v.Cols) * v.PixelMM, 1}
	meta.ReconFOVmm = meta.EncodedFOVmm
	vf := &kspaceio.Volume{Format: kspaceio.FormatFastMRI, Meta: meta, Slices: []mri.Scan{*scan},
		Attrs: map[string]any{"acquisition": "simulated", "acceleration": sm.Acceleration, "mask": sm.Mask,
			"center_fraction": sm.CenterFraction, "noise": sm.Noise, "pixel_mm": v.PixelMM, "rotate_deg": v.RotateDeg}}
	if err := kspaceio.WriteFastMRI(base+".h5", vf); err != nil {
		return err
	}
	return kspaceio.WriteNPYComplex64(base+"_truth.npy", []int{1, v.Rows, v.Cols}, img)
}
