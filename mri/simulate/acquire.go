package simulate

import (
	"crypto/rand"
	"fmt"
	"math"
	"math/big"
	mrand "math/rand/v2"
	"time"

	"github.com/kspaced/kspaced/configs"
	"github.com/kspaced/kspaced/mri"
	"github.com/kspaced/kspaced/mri/kspaceio"
)

// Volumes are the brain volumes of Debian's mricron-data by name: real 1 mm
// T1 anatomy.
var Volumes = map[string]string{
	"ch2":       "/usr/share/mricron/templates/ch2.nii.gz",
	"ch2better": "/usr/share/mricron/templates/ch2better.nii.gz",
}

// Options describe a simulated acquisition (`kspaced simulate`).
type Options struct {
	// Source is "ch2", "ch2better" (Debian mricron-data), "shepp-logan",
	// "ellipses", or a path to a NIfTI-1 volume.
	Source string
	// Slices is how many axial slices to take, evenly spaced through the
	// middle half of a volume (phantoms: independent draws).
	Slices int
	Sim    configs.Simulate
}

// Acquisition is a simulated k-space volume and the images it was made from.
type Acquisition struct {
	Volume *kspaceio.Volume
	Truth  []complex64 // [slice][row][col], the complex image before coils
	Maps   []complex64 // [coil][row][col], shared by all slices
}

// Acquire simulates undersampled multi-coil k-space: each slice's magnitude,
// normalised to peak 1, gets a smooth random phase, passes through simulated
// coils, the configured mask (a different draw per slice, as in a real
// archive) and complex Gaussian noise.
func Acquire(opt Options) (*Acquisition, error) {
	sm := opt.Sim
	if opt.Slices < 1 || opt.Slices > 512 {
		return nil, fmt.Errorf("slices = %d, want in [1, 512]", opt.Slices)
	}
	rng := mrand.New(mrand.NewPCG(sm.Seed, 0x6b73706163656421))
	mags, err := sourceImages(opt.Source, opt.Slices, sm.Rows, sm.Cols, rng)
	if err != nil {
		return nil, err
	}
	maps := CoilMaps(sm.Coils, sm.Rows, sm.Cols)
	out := &Acquisition{Maps: maps, Volume: &kspaceio.Volume{Format: kspaceio.FormatFastMRI, Attrs: map[string]any{
		"acquisition": "simulated", "acceleration": sm.Acceleration, "source": opt.Source,
	}}}
	n := sm.Rows * sm.Cols
	for i, mag := range mags {
		phase := SmoothPhase(sm.Rows, sm.Cols, rng)
		img := make([]complex64, n)
		for j := range img {
			s, c := math.Sincos(float64(phase[j]))
			img[j] = complex(float32(float64(mag[j])*c), float32(float64(mag[j])*s))
		}
		mask, err := simMask(sm, sm.Seed+uint64(i)*7919)
		if err != nil {
			return nil, err
		}
		scan, err := KSpace(img, maps, sm.Coils, sm.Rows, sm.Cols, mask, sm.Noise, rng)
		if err != nil {
			return nil, err
		}
		out.Volume.Slices = append(out.Volume.Slices, *scan)
		out.Truth = append(out.Truth, img...)
	}
	out.Volume.Meta = Meta(sm)
	return out, nil
}

func simMask(sm configs.Simulate, seed uint64) ([]float32, error) {
	switch sm.Mask {
	case "random":
		return mri.RandomMask(sm.Rows, sm.Cols, sm.CenterFraction, sm.Acceleration, seed)
	case "equispaced":
		return mri.EquispacedMask(sm.Rows, sm.Cols, sm.CenterFraction, sm.Acceleration, seed)
	case "poisson":
		calib := int(math.Round(sm.CenterFraction * float64(min(sm.Rows, sm.Cols))))
		return mri.PoissonDiscMask(sm.Rows, sm.Cols, sm.Acceleration, max(calib, 8), seed)
	}
	return nil, fmt.Errorf("unknown mask %q", sm.Mask)
}

// sourceImages returns `slices` magnitude images of rows×cols peaking at 1.
func sourceImages(source string, slices, rows, cols int, rng *mrand.Rand) ([][]float32, error) {
	var imgs [][]float32
	switch source {
	case "shepp-logan", "ellipses":
		for i := 0; i < slices; i++ {
			side := max(rows, cols)
			var sq []float32
			if source == "shepp-logan" {
				sq = SheppLogan(side)
			} else {
				sq = RandomEllipses(side, rng)
			}
			imgs = append(imgs, Resize(sq, side, side, rows, cols))
		}
	default:
		path := source
		if p, ok := Volumes[source]; ok {
			path = p
		}
		vol, err := ReadNIfTI(path)
		if err != nil {
			return nil, err
		}
		nz := vol.Dims[2]
		for i := 0; i < slices; i++ {
			// Evenly through the middle half, where axial brain slices are large.
			z := nz/4 + (i+1)*(nz/2)/(slices+1)
			img, r, c := vol.Slice(2, z)
			side := max(r, c)
			img = PadCenter(img, r, c, side, side)
			imgs = append(imgs, Resize(img, side, side, rows, cols))
		}
	}
	for _, img := range imgs {
		peak := float32(0)
		for _, v := range img {
			peak = max(peak, v)
		}
		if peak <= 0 {
			return nil, fmt.Errorf("source %s: an empty slice", source)
		}
		for j := range img {
			img[j] = max(img[j], 0) / peak
		}
	}
	return imgs, nil
}

// Write writes the simulation as base.h5 (fastMRI k-space), base_truth.npy
// (the complex images) and base_mask.npy (the sampling masks), the layout
// recon, retrain and TruthPath expect, and returns the paths.
func (sim *Acquisition) Write(base string) ([]string, error) {
	s := sim.Volume.Slices[0]
	shape := []int{s.Rows, s.Cols}
	if n := len(sim.Volume.Slices); n > 1 {
		shape = []int{n, s.Rows, s.Cols}
	}
	var masks []float32
	for _, s := range sim.Volume.Slices {
		masks = append(masks, s.Mask...)
	}
	files := []string{base + ".h5", base + "_truth.npy", base + "_mask.npy"}
	if err := kspaceio.WriteFastMRI(files[0], sim.Volume); err != nil {
		return nil, err
	}
	if err := kspaceio.WriteNPYComplex64(files[1], shape, sim.Truth); err != nil {
		return nil, err
	}
	if err := kspaceio.WriteNPYFloat32(files[2], shape, masks); err != nil {
		return nil, err
	}
	return files, nil
}

// Meta is the acquisition metadata written with simulated k-space.
func Meta(sm configs.Simulate) kspaceio.Meta {
	now := time.Now().UTC()
	m := kspaceio.Meta{
		PatientName: "KSPACED^SIMULATION", PatientID: "KSPACED-SIM",
		StudyInstanceUID: newUID(), StudyDate: now.Format("20060102"), StudyTime: now.Format("150405"),
		StudyDescription: "kspaced simulation", SeriesDescription: "simulated k-space",
		SystemVendor: "kspaced", SystemModel: "simulator", FieldStrengthT: 3,
		AccelerationY: int(math.Round(sm.Acceleration)), CalibrationMode: "embedded", Trajectory: "cartesian",
	}
	m.EncodedMatrix = [3]int{sm.Rows, sm.Cols, 1}
	m.ReconMatrix = m.EncodedMatrix
	m.EncodedFOVmm = [3]float64{float64(sm.Rows), float64(sm.Cols), 1} // 1 mm pixels
	m.ReconFOVmm = m.EncodedFOVmm
	return m
}

// newUID is a DICOM UID under the UUID-derived root 2.25.
func newUID() string {
	b := make([]byte, 16)
	_, _ = rand.Read(b)
	return "2.25." + new(big.Int).SetBytes(b).String()
}
