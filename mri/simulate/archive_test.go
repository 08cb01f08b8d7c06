package simulate

import (
	"context"
	"fmt"
	"path/filepath"
	"strings"
	"testing"

	"github.com/kspaced/kspaced/configs"
	"github.com/kspaced/kspaced/internal/testutil"
	"github.com/kspaced/kspaced/mri/kspaceio"
)

// TestSimulateArchive writes a small archive from real anatomy and checks
// the promises: all three orientations, varied coils, masks and noise, no
// noise scan in the files (retrain must estimate it), the held-out slab and
// its margins absent from the axial training slices, and test scans of each
// matrix × acceleration that read back.
func TestSimulateArchive(t *testing.T) {
	t.Parallel()
	testutil.File(t, Volumes["ch2"])
	a := configs.Archive{Volumes: []string{"ch2"}, Matrix: 32, Stride: 15, PixelMM: [2]float64{5, 7}, RotateDeg: 10,
		Coils: []int{2, 3, 4}, Masks: []string{"random", "equispaced", "poisson"}, Acceleration: [2]float64{3, 6},
		CenterFractions: []float64{0.08, 0.12}, Noise: [2]float64{0.01, 0.03}, TestSlab: 6, TestMargin: 3,
		TestMatrices: []int{32, 48}, TestAccelerations: []float64{4, 8}, TestNoise: 0.01, TestFOVmm: 220, Seed: 3}
	out := t.TempDir()
	res, err := SimulateArchive(context.Background(), a, out, nil)
	if err != nil {
		t.Fatal(err)
	}
	files, _ := filepath.Glob(filepath.Join(res.TrainDir, "*.h5"))
	if len(files) != res.Train || res.Train < 15 {
		t.Fatalf("%d training files, result says %d", len(files), res.Train)
	}
	vol, err := ReadNIfTI(Volumes["ch2"])
	if err != nil {
		t.Fatal(err)
	}
	lo, hi := testSlab(vol, a)
	orient := map[string]int{}
	coils, masks := map[int]bool{}, map[string]bool{}
	for _, f := range files {
		parts := strings.Split(strings.TrimSuffix(filepath.Base(f), ".h5"), "_")
		orient[parts[1]]++
		var z int
		fmt.Sscanf(parts[2], "%d", &z)
		if parts[1] == "axial" && z >= lo-a.TestMargin && z < hi+a.TestMargin {
			t.Errorf("axial slice %d of the held-out slab [%d, %d) ± %d is in training", z, lo, hi, a.TestMargin)
		}
		v, err := kspaceio.Read(f)
		if err != nil {
			t.Fatal(err)
		}
		s := v.Slices[0]
		if s.NoiseCov != nil {
			t.Errorf("%s carries a noise covariance", f)
		}
		if s.Rows != 32 || s.Cols != 32 {
			t.Errorf("%s is %d×%d", f, s.Rows, s.Cols)
		}
		coils[s.Coils] = true
		masks[fmt.Sprint(v.Attrs["mask"])] = true
	}
	if len(orient) != 3 || len(coils) < 2 || len(masks) < 2 {
		t.Errorf("orientations %v, coil counts %v, masks %v: not varied", orient, coils, masks)
	}
	if len(res.TestDirs) != 4 || res.Test != 4*a.TestSlab/2 {
		t.Fatalf("test dirs %v, %d test scans", res.TestDirs, res.Test)
	}
	tf, _ := filepath.Glob(filepath.Join(out, "test", "m48-8x", "*.h5"))
	if len(tf) != a.TestSlab/2 {
		t.Fatalf("m48-8x holds %d scans", len(tf))
	}
	v, err := kspaceio.Read(tf[0])
	if err != nil || v.Slices[0].Rows != 48 || v.Slices[0].Coils != 8 {
		t.Fatalf("test scan: %v", err)
	}
}
