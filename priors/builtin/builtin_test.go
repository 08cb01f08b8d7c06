package builtin

import (
	"fmt"
	"math"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/kspaced/kspaced/priors"
	"github.com/kspaced/kspaced/qc"
)

// The embedded prior is a U-Net that denoises any matrix: at 128² (its
// training size) and at a non-square size it is not a multiple of, a noisy
// smooth image comes back closer to the clean one than the noisy input was.
func TestBuiltinDenoisesAnySize(t *testing.T) {
	d, info, err := Load()
	if err != nil {
		t.Fatal(err)
	}
	if info.Kind != priors.KindUNet || info.Name != Name {
		t.Fatalf("built-in prior is %q named %q, want a U-Net named %q", info.Kind, info.Name, Name)
	}
	for _, sz := range [][2]int{{128, 128}, {100, 76}} {
		rows, cols := sz[0], sz[1]
		ds, err := priors.ForSize(d, rows, cols)
		if err != nil {
			t.Fatal(err)
		}
		n := rows * cols
		clean, noisy := make([]float32, 2*n), make([]float32, 2*n)
		const sigma = 0.2
		for i := 0; i < rows; i++ {
			for j := 0; j < cols; j++ {
				// a disc of magnitude ≈ 1 (the per-scan normalisation's scale)
				r := math.Hypot(float64(i-rows/2)/float64(rows), float64(j-cols/2)/float64(cols))
				if r < 0.35 {
					clean[i*cols+j] = 0.8
				}
			}
		}
		for i := range noisy { // deterministic pseudo-noise of std ≈ σ
			noisy[i] = clean[i] + sigma*float32(math.Sqrt(3)*(2*math.Mod(float64(i)*0.6180339887, 1)-1))
		}
		out := make([]float32, 2*n)
		if err := ds.Denoise(out, noisy, []float32{sigma}); err != nil {
			t.Fatal(err)
		}
		if eIn, eOut := rms(noisy, clean), rms(out, clean); !(eOut < 0.7*eIn) {
			t.Errorf("%d×%d: denoised error %.4f, noisy %.4f: the built-in prior does not denoise", rows, cols, eOut, eIn)
		}
	}
}

func rms(a, b []float32) float64 {
	var s float64
	for i := range a {
		d := float64(a[i] - b[i])
		s += d * d
	}
	return math.Sqrt(s / float64(len(a)))
}

// SHA256 agrees with coreutils, the embedded network is the lap of the EM
// run it names (train/default-prior; `make ship-prior` adds a covariance
// head to it), and the QC calibration is that lap's.
func TestBuiltinProvenance(t *testing.T) {
	out, err := exec.Command("sha256sum", "default.safetensors").Output()
	if err != nil {
		t.Skipf("no sha256sum: %v", err)
	}
	if got := strings.Fields(string(out))[0]; got != SHA256() {
		t.Errorf("SHA256 %s, sha256sum %s", SHA256(), got)
	}
	d, info, err := Load()
	if err != nil {
		t.Fatal(err)
	}
	u, ok := d.(*priors.UNet)
	if !ok || u.Covariance() == nil {
		t.Fatalf("the built-in prior (%T) has no covariance head: MMPS's auto covariance would fall back to VJPs", d)
	}
	lap := info.Provenance.EMLap
	src := filepath.Join("..", "..", "train", "default-prior", fmt.Sprintf("lap-%02d.safetensors", lap))
	ref, _, err := priors.LoadPrior(src)
	if err != nil {
		t.Fatalf("the built-in prior says EM lap %d: %v", lap, err)
	}
	x := make([]float32, 2*64*64)
	for i := range x {
		x[i] = float32(math.Sin(float64(i) * 0.37))
	}
	a, b := make([]float32, len(x)), make([]float32, len(x))
	da, err := priors.ForSize(d, 64, 64)
	if err != nil {
		t.Fatal(err)
	}
	db, err := priors.ForSize(ref, 64, 64)
	if err != nil {
		t.Fatal(err)
	}
	if err := da.Denoise(a, x, []float32{0.3}); err != nil {
		t.Fatal(err)
	}
	if err := db.Denoise(b, x, []float32{0.3}); err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(a, b) {
		t.Errorf("the built-in network denoises differently from %s, the lap it names", src)
	}
	cal, err := qc.ParseCalibration(QCCalibration())
	if err != nil {
		t.Fatalf("QC calibration: %v", err)
	}
	if cal.Prior != filepath.Base(src) || cal.Typicality == nil {
		t.Errorf("the QC calibration is for %q (typicality %v), not the shipped %s", cal.Prior, cal.Typicality, filepath.Base(src))
	}
}
