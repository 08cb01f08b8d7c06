//go:build unix

package mri_test

import (
	"context"
	"fmt"
	"math"
	"runtime"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/kspaced/kspaced/mri"
)

// BenchmarkReconVsBART times one 128×128 8-coil slice (the fixture of
// TestReconstructionAgainstBART) reconstructed by us and by `bart pics`,
// side by side. BART's ns/op is the wall time of the whole command (process
// start, reading and writing .cfl files); its own "Total Time" line, the
// compute part, is reported as bart-compute-s. cpu-s/op is user + system
// CPU time (our whole test process; BART's child process), which a loaded
// shared machine distorts far less than wall time.
func BenchmarkReconVsBART(b *testing.B) {
	f := newReconFixture(b, reconAccel)
	f.addNoise(b, reconNoise, 1)
	op := mri.NewSENSE(f.maps, f.coils, f.rows, f.cols, f.mask)
	n := f.rows * f.cols
	ctx := context.Background()
	x := make([]complex64, n)
	const l1Lambda = 0.005
	algs := []struct {
		name  string
		ours  func()
		flags []string
	}{
		{"cgsense", func() {
			clear(x)
			mri.CGSENSE(ctx, x, op, f.under, reconL2Lambda, reconIters, 0, nil)
		}, []string{"-l2", "-r", strconv.FormatFloat(reconL2Lambda, 'g', -1, 64)}},
		{"l1wavelet", func() {
			clear(x)
			mri.L1Wavelet(ctx, x, op, f.under, f.rows, f.cols, mri.L1Options{Lambda: l1Lambda, MaxIter: reconIters, Shift: true, Seed: 1})
		}, []string{"-l1", "-r", strconv.FormatFloat(l1Lambda, 'g', -1, 64)}},
	}
	for _, a := range algs {
		// Ours uses GOMAXPROCS threads (set it with -cpu).
		b.Run(a.name+"/ours", func(b *testing.B) {
			c0 := processCPU(b)
			runs := 0
			for b.Loop() {
				a.ours()
				runs++
			}
			b.ReportMetric((processCPU(b)-c0).Seconds()/float64(runs), "cpu-s/op")
		})
		for _, threads := range []int{1, runtime.NumCPU()} {
			b.Run(fmt.Sprintf("%s/bart-omp%d", a.name, threads), func(b *testing.B) {
				args := append([]string{"pics", "-w", "1", "-i", strconv.Itoa(reconIters)}, a.flags...)
				args = append(args, f.kspBase, f.mapsBase, "bench")
				var compute, cpu time.Duration
				runs := 0
				for b.Loop() {
					_, c, out := reconRunThreads(b, f.dir, f.bart, threads, args...)
					compute += bartTotalTime(b, out)
					cpu += c
					runs++
				}
				b.ReportMetric(compute.Seconds()/float64(runs), "bart-compute-s")
				b.ReportMetric(cpu.Seconds()/float64(runs), "cpu-s/op")
			})
		}
	}
}

// bartTotalTime parses pics' "Total Time: <seconds>" line.
func bartTotalTime(b *testing.B, out string) time.Duration {
	for _, line := range strings.Split(out, "\n") {
		if v, ok := strings.CutPrefix(strings.TrimSpace(line), "Total Time:"); ok {
			s, err := strconv.ParseFloat(strings.TrimSpace(v), 64)
			if err == nil {
				return time.Duration(s * float64(time.Second))
			}
		}
	}
	b.Fatalf("no Total Time in bart output:\n%s", out)
	return 0
}

// TestL1QualitySweep is the quality table of docs/bench/mri.md: PSNR (dB)
// and SSIM of L1-wavelet, ours and BART's, over noise levels and λ (and our
// CG-SENSE), on the fixture of TestReconstructionAgainstBART. It asserts
// the documented claim: at each noise level, our best-λ PSNR is within
// 0.5 dB of BART's best-λ PSNR. About a minute with BART; skipped by -short.
func TestL1QualitySweep(t *testing.T) {
	t.Parallel()
	if testing.Short() {
		t.Skip("quality sweep: about a minute of BART runs")
	}
	f := newReconFixture(t, reconAccel)
	clean := append([]complex64(nil), f.under...)
	op := mri.NewSENSE(f.maps, f.coils, f.rows, f.cols, f.mask)
	n := f.rows * f.cols
	ctx := context.Background()
	for _, sigma := range []float64{0, 0.003, 0.01} {
		copy(f.under, clean)
		f.addNoise(t, sigma, 1)
		bestOurs, bestBART := math.Inf(-1), math.Inf(-1)
		for _, lam := range []float64{0.001, 0.002, 0.005, 0.01, 0.02} {
			x := make([]complex64, n)
			if _, err := mri.L1Wavelet(ctx, x, op, f.under, f.rows, f.cols, mri.L1Options{Lambda: lam, MaxIter: reconIters, Shift: true, Seed: 1}); err != nil {
				t.Fatalf("noise %g λ %g: %v", sigma, lam, err)
			}
			po, so := f.scores(t, x)
			xb, _ := f.bartPics(t, "sweep", "-l1", "-r", strconv.FormatFloat(lam, 'g', -1, 64), "-i", strconv.Itoa(reconIters))
			pb, sb := f.scores(t, xb)
			t.Logf("noise=%g λ=%g  L1 ours %.2f dB / %.3f  BART %.2f dB / %.3f", sigma, lam, po, so, pb, sb)
			bestOurs, bestBART = math.Max(bestOurs, po), math.Max(bestBART, pb)
		}
		x := make([]complex64, n)
		if _, _, err := mri.CGSENSE(ctx, x, op, f.under, reconL2Lambda, reconIters, 0, nil); err != nil {
			t.Fatalf("noise %g: cg-sense: %v", sigma, err)
		}
		p, s := f.scores(t, x)
		t.Logf("noise=%g λ=%g  CG-SENSE ours %.2f dB / %.3f", sigma, reconL2Lambda, p, s)
		if bestOurs < bestBART-0.5 {
			t.Errorf("noise %g: best-λ L1-wavelet %.2f dB, BART %.2f dB", sigma, bestOurs, bestBART)
		}
	}
}

// processCPU is this process's user + system CPU time so far.
func processCPU(b *testing.B) time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		b.Fatal(err)
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
