package espirit_test

import (
	"context"
	"fmt"
	"math"
	"math/cmplx"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/kspaced/kspaced/fft"
	"github.com/kspaced/kspaced/internal/testutil"
	"github.com/kspaced/kspaced/mri/espirit"
	"github.com/kspaced/kspaced/mri/kspaceio"
)

func espAbs2(v complex128) float64 { return real(v)*real(v) + imag(v)*imag(v) }

// espRun runs a BART command in dir.
func espRun(t testing.TB, dir, bart string, args ...string) time.Duration {
	t.Helper()
	cmd := exec.Command(bart, args...)
	cmd.Dir = dir
	start := time.Now()
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("bart %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return time.Since(start)
}

// espCorrelation is |⟨a, b⟩|/(‖a‖‖b‖) over the pixels in keep, jointly over
// coils: 1 when the maps agree up to one global phase.
func espCorrelation(a, b []complex64, coils, npix int, keep []bool) float64 {
	var dot complex128
	var na, nb float64
	for c := 0; c < coils; c++ {
		for i := 0; i < npix; i++ {
			if !keep[i] {
				continue
			}
			x, y := complex128(a[c*npix+i]), complex128(b[c*npix+i])
			dot += cmplx.Conj(x) * y
			na += espAbs2(x)
			nb += espAbs2(y)
		}
	}
	return cmplx.Abs(dot) / math.Sqrt(na*nb)
}

func TestESPIRiTMatchesBART(t *testing.T) {
	t.Parallel()
	bart := testutil.Tool(t, "bart")
	dir := t.TempDir()
	espRun(t, dir, bart, "phantom", "-k", "-s", "8", "-x", "128", "ksp")
	bartTime := espRun(t, dir, bart, "ecalib", "-m1", "-r", "24", "-k", "6", "-t", "0.001", "-c", "0.8", "ksp", "sens", "ev")
	dims, ksp, err := kspaceio.ReadCFL(filepath.Join(dir, "ksp"))
	if err != nil {
		t.Fatal(err)
	}
	if len(dims) != 4 || dims[0] != 128 || dims[1] != 128 || dims[2] != 1 || dims[3] != 8 {
		t.Fatalf("phantom dims %v, want [128 128 1 8]", dims)
	}
	_, sens, err := kspaceio.ReadCFL(filepath.Join(dir, "sens"))
	if err != nil {
		t.Fatal(err)
	}
	_, bev, err := kspaceio.ReadCFL(filepath.Join(dir, "ev"))
	if err != nil {
		t.Fatal(err)
	}
	const coils, rows, cols = 8, 128, 128
	npix := rows * cols
	if len(sens) != coils*npix || len(bev) != npix {
		t.Fatalf("bart wrote %d map and %d eigenvalue values", len(sens), len(bev))
	}
	maps := make([]complex64, len(ksp))
	ev := make([]float32, npix)
	start := time.Now()
	err = espirit.EspiritWithEigenvalues(context.Background(), maps, ev, ksp, coils, rows, cols, nil, espirit.Options{Calib: 24, Kernel: 6, Threshold: 0.001, Crop: 0.8})
	ours := time.Since(start)
	if err != nil {
		t.Fatal(err)
	}
	// The object: where BART kept its map and the coil-combined image is
	// above 10% of its maximum.
	im := append([]complex64(nil), ksp...)
	fft.Inverse(im, im, rows, cols)
	mag := make([]float64, npix)
	var peak float64
	for i := range mag {
		for c := 0; c < coils; c++ {
			mag[i] += espAbs2(complex128(im[c*npix+i]))
		}
		mag[i] = math.Sqrt(mag[i])
		peak = max(peak, mag[i])
	}
	keep := make([]bool, npix)
	inside, disagree := 0, 0
	var evErr, evSum float64
	for i := range keep {
		var b2 float64
		for c := 0; c < coils; c++ {
			b2 += espAbs2(complex128(sens[c*npix+i]))
		}
		keep[i] = b2 > 0 && mag[i] > 0.1*peak
		if keep[i] {
			inside++
			d := math.Abs(float64(ev[i]) - real(complex128(bev[i])))
			evErr = max(evErr, d)
			evSum += d
		}
		if (b2 > 0) != (float64(ev[i]) > 0.8) {
			disagree++
		}
	}
	corr := espCorrelation(maps, sens, coils, npix, keep)
	t.Logf("%d object pixels: correlation with bart ecalib %.5f, eigenvalue difference mean %.2e max %.2e; crop disagrees at %d of %d pixels; ours %v, bart ecalib %v (process)", inside, corr, evSum/float64(inside), evErr, disagree, npix, ours, bartTime)
	if inside < npix/10 {
		t.Fatalf("only %d object pixels", inside)
	}
	if corr < 0.95 {
		t.Errorf("correlation with bart ecalib %.4f < 0.95", corr)
	}
	if evSum/float64(inside) > 1e-3 {
		t.Errorf("eigenvalues differ from bart's by %.3g on average", evSum/float64(inside))
	}
	if disagree > npix/100 {
		t.Errorf("crop decision differs from bart's at %d pixels", disagree)
	}
}

// BenchmarkESPIRiTvsBART times our ESPIRiT and `bart ecalib` (a process,
// including its file I/O) back to back on the same k-space, calib 24,
// kernel 6, one map, and reports the fastest of b.N runs of each, which is
// the fairest figure on a shared machine.
func BenchmarkESPIRiTvsBART(b *testing.B) {
	bart := testutil.Tool(b, "bart")
	for _, c := range []struct{ coils, n int }{{8, 128}, {16, 320}} {
		dir := b.TempDir()
		_, _, ksp := espirit.EspiritSynthetic(c.coils, c.n, c.n)
		if err := kspaceio.WriteCFL(filepath.Join(dir, "ksp"), []int{c.n, c.n, 1, c.coils}, ksp); err != nil {
			b.Fatal(err)
		}
		b.Run(fmt.Sprintf("%dcoils_%d", c.coils, c.n), func(b *testing.B) {
			ours, theirs := time.Duration(math.MaxInt64), time.Duration(math.MaxInt64)
			for range b.N {
				start := time.Now()
				if _, err := espirit.Maps(context.Background(), ksp, c.coils, c.n, c.n, nil, espirit.Options{}); err != nil {
					b.Fatal(err)
				}
				ours = min(ours, time.Since(start))
				theirs = min(theirs, espRun(b, dir, bart, "ecalib", "-m1", "-r", "24", "-k", "6", "ksp", "sens"))
			}
			b.ReportMetric(float64(ours.Microseconds())/1e3, "ours-ms")
			b.ReportMetric(float64(theirs.Microseconds())/1e3, "bart-ms")
			b.ReportMetric(float64(theirs)/float64(ours), "bart/ours")
		})
	}
}
