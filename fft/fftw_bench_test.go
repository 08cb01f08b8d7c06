//go:build fftw

package fft_test

import (
	"fmt"
	"runtime"
	"slices"
	"testing"
	"time"

	"github.com/kspaced/kspaced/fft"
	"github.com/kspaced/kspaced/fft/internal/fftw"
)

// BenchmarkFFTW times FFTW's fftwf_plan_many_dft (FFTW_MEASURE, out of place,
// unnormalised and uncentred: strictly less work than ours) on the same
// batches, single-threaded and with 2 threads. Run with -tags fftw.
func BenchmarkFFTW(b *testing.B) {
	for _, sz := range benchSizes {
		for _, threads := range []int{1, 2} {
			for _, inv := range []bool{false, true} {
				b.Run(fmt.Sprintf("%dx%dx%d/%s/threads=%d", sz.batch, sz.rows, sz.cols, dirName(inv), threads), func(b *testing.B) {
					p, err := fftw.NewPlan(sz.rows, sz.cols, sz.batch, threads, inv)
					if err != nil {
						b.Fatal(err)
					}
					defer p.Destroy()
					copy(p.In, random(len(p.In), 1))
					b.SetBytes(int64(8 * len(p.In)))
					b.ReportAllocs()
					b.ResetTimer()
					for b.Loop() {
						p.Execute()
					}
				})
			}
		}
	}
}

// BenchmarkSideBySide alternates our transform and FFTW's on the same batch,
// with the same thread count (GOMAXPROCS for ours), call by call, so both
// see the same machine load; it reports the minimum and median time of each
// and the ratio of the minima (ours/FFTW) and of the medians.
func BenchmarkSideBySide(b *testing.B) {
	for _, sz := range benchSizes {
		for _, threads := range []int{1, 2} {
			for _, inv := range []bool{false, true} {
				b.Run(fmt.Sprintf("%dx%dx%d/%s/threads=%d", sz.batch, sz.rows, sz.cols, dirName(inv), threads), func(b *testing.B) {
					defer runtime.GOMAXPROCS(runtime.GOMAXPROCS(threads))
					p, err := fftw.NewPlan(sz.rows, sz.cols, sz.batch, threads, inv)
					if err != nil {
						b.Fatal(err)
					}
					defer p.Destroy()
					copy(p.In, random(len(p.In), 1))
					ours, err := fft.NewPlan(sz.rows, sz.cols)
					if err != nil {
						b.Fatal(err)
					}
					x := random(len(p.In), 1)
					y := make([]complex64, len(x))
					f := ours.Forward
					if inv {
						f = ours.Inverse
					}
					f(y, x)
					p.Execute()
					var tOurs, tFFTW []float64
					b.ResetTimer()
					for b.Loop() {
						t0 := time.Now()
						f(y, x)
						t1 := time.Now()
						p.Execute()
						t2 := time.Now()
						tOurs = append(tOurs, float64(t1.Sub(t0).Nanoseconds()))
						tFFTW = append(tFFTW, float64(t2.Sub(t1).Nanoseconds()))
					}
					slices.Sort(tOurs)
					slices.Sort(tFFTW)
					b.ReportMetric(tOurs[0], "ours-min-ns")
					b.ReportMetric(tFFTW[0], "fftw-min-ns")
					b.ReportMetric(tOurs[len(tOurs)/2], "ours-med-ns")
					b.ReportMetric(tFFTW[len(tFFTW)/2], "fftw-med-ns")
					b.ReportMetric(tOurs[0]/tFFTW[0], "ratio-min")
					b.ReportMetric(tOurs[len(tOurs)/2]/tFFTW[len(tFFTW)/2], "ratio-med")
				})
			}
		}
	}
}
