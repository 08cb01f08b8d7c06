package mri_test

import (
	"context"
	"fmt"
	"math"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"github.com/kspaced/kspaced/fft"
	"github.com/kspaced/kspaced/internal/testutil"
	"github.com/kspaced/kspaced/mri"
	"github.com/kspaced/kspaced/mri/kspaceio"
)

// reconFixture is BART's 8-coil phantom, undersampled with our mask, with
// coil maps from `bart ecalib -m1` that both sides use. The data are scaled
// so the ground truth (the fully sampled coil combination with those maps)
// peaks at 1, and BART gets -w 1 so it solves the same problem unscaled.
type reconFixture struct {
	bart, dir         string
	coils, rows, cols int
	mask              []float32
	under, maps       []complex64 // [coil][ky][kx], scaled
	truth             []float32   // |Σ conj(S)·Fᴴ y_full|, max 1
	kspBase, mapsBase string      // the same data as BART files
}

// reconRun runs bart in dir on one OpenMP thread: BART's threads spin-wait,
// and on a shared, loaded machine that costs it 10-50× in wall time.
func reconRun(t testing.TB, dir, bart string, args ...string) time.Duration {
	t.Helper()
	d, _, _ := reconRunThreads(t, dir, bart, 1, args...)
	return d
}

// reconRunThreads runs bart with OMP_NUM_THREADS=threads and returns the
// wall time of the whole command, its CPU time (user + system) and its output.
func reconRunThreads(t testing.TB, dir, bart string, threads int, args ...string) (wall, cpu time.Duration, out string) {
	t.Helper()
	cmd := exec.Command(bart, args...)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "OMP_NUM_THREADS="+strconv.Itoa(threads))
	start := time.Now()
	b, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("bart %v: %v\n%s", args, err, b)
	}
	wall = time.Since(start)
	return wall, cmd.ProcessState.UserTime() + cmd.ProcessState.SystemTime(), string(b)
}

func reconRead(t testing.TB, base string, want ...int) []complex64 {
	t.Helper()
	dims, data, err := kspaceio.ReadCFL(base)
	if err != nil {
		t.Fatal(err)
	}
	if fmt.Sprint(dims) != fmt.Sprint(want) {
		t.Fatalf("%s: dims %v, want %v", base, dims, want)
	}
	return data
}

func newReconFixture(t testing.TB, accel float64) *reconFixture {
	t.Helper()
	f := &reconFixture{bart: testutil.Tool(t, "bart"), dir: t.TempDir(), coils: 8, rows: 128, cols: 128}
	n := f.rows * f.cols
	reconRun(t, f.dir, f.bart, "phantom", "-k", "-s", "8", "-x", "128", "full")
	// BART [x y z coil] column-major is our [coil][y][x]: x (BART's first
	// dimension) is our column index.
	full := reconRead(t, filepath.Join(f.dir, "full"), 128, 128, 1, 8)
	var err error
	f.mask, err = mri.PoissonDiscMask(f.rows, f.cols, accel, 24, 1)
	if err != nil {
		t.Fatal(err)
	}
	f.under = make([]complex64, len(full))
	for c := 0; c < f.coils; c++ {
		for i, m := range f.mask {
			f.under[c*n+i] = full[c*n+i] * complex(m, 0)
		}
	}
	dims := []int{128, 128, 1, 8}
	if err := kspaceio.WriteCFL(filepath.Join(f.dir, "under0"), dims, f.under); err != nil {
		t.Fatal(err)
	}
	reconRun(t, f.dir, f.bart, "ecalib", "-m1", "under0", "maps")
	f.maps = reconRead(t, filepath.Join(f.dir, "maps"), 128, 128, 1, 8)

	img := make([]complex64, len(full))
	fft.Inverse(img, full, f.rows, f.cols)
	comb := make([]complex64, n)
	mri.NewCoilOp(f.maps, f.coils, f.rows, f.cols).Adjoint(comb, img)
	f.truth = make([]float32, n)
	mri.Magnitude(f.truth, comb)
	scale := float32(1 / mri.MaxOf(f.truth))
	for i := range f.truth {
		f.truth[i] *= scale
	}
	for i := range f.under {
		f.under[i] *= complex(scale, 0)
	}
	f.kspBase, f.mapsBase = "under", "maps"
	if err := kspaceio.WriteCFL(filepath.Join(f.dir, f.kspBase), dims, f.under); err != nil {
		t.Fatal(err)
	}
	return f
}

// bartPics runs `bart pics` with the given regularisation flags and returns
// the image and the wall time of the command (start-up and file I/O included).
func (f *reconFixture) bartPics(t testing.TB, out string, flags ...string) ([]complex64, time.Duration) {
	t.Helper()
	args := append([]string{"pics", "-w", "1"}, flags...)
	args = append(args, f.kspBase, f.mapsBase, out)
	d := reconRun(t, f.dir, f.bart, args...)
	return reconRead(t, filepath.Join(f.dir, out), 128, 128), d
}

func (f *reconFixture) scores(t testing.TB, x []complex64) (psnr, ssim float64) {
	t.Helper()
	m := make([]float32, len(x))
	mri.Magnitude(m, x)
	var err error
	if psnr, err = mri.PSNR(f.truth, m, mri.MaxOf(f.truth)); err != nil {
		t.Fatal(err)
	}
	if ssim, err = mri.SSIM(f.truth, m, f.rows, f.cols, mri.MaxOf(f.truth)); err != nil {
		t.Fatal(err)
	}
	return psnr, ssim
}

func relDiff64(a, b []complex64) float64 {
	var d, n float64
	for i := range a {
		e := complex128(a[i]) - complex128(b[i])
		d += real(e)*real(e) + imag(e)*imag(e)
		n += real(complex128(b[i]))*real(complex128(b[i])) + imag(complex128(b[i]))*imag(complex128(b[i]))
	}
	return math.Sqrt(d / n)
}

const (
	reconAccel    = 4
	reconNoise    = 0.005 // k-space noise std, relative to a truth peaking at 1
	reconL2Lambda = 0.01
	reconIters    = 50
)

// reconL1Lambdas is the λ sweep for L1-wavelet: each side is scored at its
// best λ (an oracle both get), as the best λ of two different wavelets
// need not coincide.
var reconL1Lambdas = []float64{0.002, 0.005, 0.01}

func TestReconstructionAgainstBART(t *testing.T) {
	t.Parallel()
	f := newReconFixture(t, reconAccel)
	f.addNoise(t, reconNoise, 1)
	ctx := context.Background()
	op := mri.NewSENSE(f.maps, f.coils, f.rows, f.cols, f.mask)
	n := f.rows * f.cols

	zf := make([]complex64, n)
	op.Adjoint(zf, f.under)
	zp, zs := f.scores(t, zf)
	t.Logf("acceleration %.2f, noise %g; zero-filled (Aᴴy): PSNR %.2f dB, SSIM %.4f", float64(len(f.mask))/float64(mri.CountMask(f.mask)), reconNoise, zp, zs)

	// CG-SENSE: the same normal equations, the same iteration count.
	x := make([]complex64, n)
	it, rr, err := mri.CGSENSE(ctx, x, op, f.under, reconL2Lambda, reconIters, 0, nil)
	if err != nil {
		t.Fatal(err)
	}
	ref, _ := f.bartPics(t, "l2", "-l2", "-r", strconv.FormatFloat(reconL2Lambda, 'g', -1, 64), "-i", strconv.Itoa(reconIters))
	op1, os1 := f.scores(t, x)
	bp1, bs1 := f.scores(t, ref)
	d := relDiff64(x, ref)
	t.Logf("CG-SENSE λ=%g, %d iterations (relres %.1e): ours PSNR %.2f dB SSIM %.4f; BART %.2f dB %.4f; relative difference %.1e",
		reconL2Lambda, it, rr, op1, os1, bp1, bs1, d)
	if op1 < bp1-0.5 {
		t.Errorf("CG-SENSE PSNR %.2f dB, BART %.2f dB", op1, bp1)
	}
	if d > 1e-3 {
		t.Errorf("CG-SENSE differs from BART's by %.2g: not the same problem?", d)
	}

	// L1-wavelet: both FISTA over db2 with random cycle spinning.
	best, bartBest := math.Inf(-1), math.Inf(-1)
	for _, lam := range reconL1Lambdas {
		x2 := make([]complex64, n)
		it, err = mri.L1Wavelet(ctx, x2, op, f.under, f.rows, f.cols, mri.L1Options{
			Lambda: lam, MaxIter: reconIters, Shift: true, Seed: 1,
		})
		if err != nil {
			t.Fatal(err)
		}
		ref2, _ := f.bartPics(t, "l1", "-l1", "-r", strconv.FormatFloat(lam, 'g', -1, 64), "-i", strconv.Itoa(reconIters))
		op2, os2 := f.scores(t, x2)
		bp2, bs2 := f.scores(t, ref2)
		t.Logf("L1-wavelet λ=%g, %d iterations: ours PSNR %.2f dB SSIM %.4f; BART %.2f dB %.4f", lam, it, op2, os2, bp2, bs2)
		best, bartBest = math.Max(best, op2), math.Max(bartBest, bp2)
	}
	if best < bartBest-0.5 {
		t.Errorf("L1-wavelet best PSNR %.2f dB, BART's %.2f dB", best, bartBest)
	}
	if !(best > zp+3 && best > op1) {
		t.Errorf("L1-wavelet (%.2f dB) does not beat zero-filling (%.2f dB) and CG-SENSE (%.2f dB)", best, zp, op1)
	}
}

// addNoise adds complex Gaussian noise of std sigma (per real and imaginary
// part) to the sampled k-space and rewrites BART's copy.
func (f *reconFixture) addNoise(t testing.TB, sigma float64, seed uint64) {
	t.Helper()
	rng := rand.New(rand.NewPCG(seed, 7))
	for i, v := range f.under {
		if v != 0 {
			f.under[i] += complex(float32(sigma*rng.NormFloat64()), float32(sigma*rng.NormFloat64()))
		}
	}
	if err := kspaceio.WriteCFL(filepath.Join(f.dir, f.kspBase), []int{128, 128, 1, 8}, f.under); err != nil {
		t.Fatal(err)
	}
}

func TestPoissonDiscLikeBART(t *testing.T) {
	t.Parallel()
	bart := testutil.Tool(t, "bart")
	dir := t.TempDir()
	reconRun(t, dir, bart, "poisson", "-Y", "128", "-Z", "128", "-y", "1.6", "-z", "1.6", "-C", "24", "-v", "-s", "5", "pat")
	data := reconRead(t, filepath.Join(dir, "pat"), 1, 128, 128)
	ref := make([]float32, len(data))
	for i, v := range data {
		if real(v) != 0 {
			ref[i] = 1
		}
	}
	accel := float64(len(ref)) / float64(mri.CountMask(ref))
	ours, err := mri.PoissonDiscMask(128, 128, accel, 24, 5)
	if err != nil {
		t.Fatal(err)
	}
	ai, ao := mri.RadialDensity(ours, 128, 128, 24)
	bi, bo := mri.RadialDensity(ref, 128, 128, 24)
	an, bn := mri.MeanNNDistance(ours, 128, 128), mri.MeanNNDistance(ref, 128, 128)
	t.Logf("BART R=%.2f: density inner %.3f outer %.3f, NN distance %.2f; ours R=%.2f: %.3f %.3f, %.2f",
		accel, bi, bo, bn, float64(len(ours))/float64(mri.CountMask(ours)), ai, ao, an)
	// Loose agreement: the same kind of pattern, not the same algorithm.
	if ai/ao < 0.5*bi/bo || ai/ao > 2*bi/bo {
		t.Errorf("centre/periphery density ratio %.2f, BART %.2f", ai/ao, bi/bo)
	}
	if math.Abs(an-bn)/bn > 0.3 {
		t.Errorf("nearest-neighbour distance %.2f, BART %.2f", an, bn)
	}
}
