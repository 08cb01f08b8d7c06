//go:build fftw && linux

package fft_test

import (
	"fmt"
	"math"
	"runtime"
	"slices"
	"syscall"
	"testing"
	"time"
	"unsafe"

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
// see the same machine load; it reports the minimum and median wall time of
// each and the ratios (ours/FFTW) of the minima and of the medians. With one
// thread both run entirely on the calling OS thread, so it also reports the
// minimum thread CPU time of each and their ratio, which time spent waiting
// for a core on a shared machine does not inflate.
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
					if !inv { // FFTW really computes the transform: its DC term is ours at the centre, times √(rows·cols)
						got, want := p.Out[0], y[(sz.rows/2)*sz.cols+sz.cols/2]*complex(float32(math.Sqrt(float64(sz.rows*sz.cols))), 0)
						if d := got - want; real(d)*real(d)+imag(d)*imag(d) > 1e-6*(real(want)*real(want)+imag(want)*imag(want)) {
							b.Fatalf("FFTW DC %v, ours ×√N %v", got, want)
						}
					}
					runtime.LockOSThread()
					defer runtime.UnlockOSThread()
					var tOurs, tFFTW, cOurs, cFFTW []float64
					b.ResetTimer()
					for b.Loop() {
						c0, t0 := threadCPU(), time.Now()
						f(y, x)
						c1, t1 := threadCPU(), time.Now()
						p.Execute()
						c2, t2 := threadCPU(), time.Now()
						tOurs = append(tOurs, float64(t1.Sub(t0).Nanoseconds()))
						tFFTW = append(tFFTW, float64(t2.Sub(t1).Nanoseconds()))
						cOurs = append(cOurs, float64(c1-c0))
						cFFTW = append(cFFTW, float64(c2-c1))
					}
					if threads == 1 {
						slices.Sort(cOurs)
						slices.Sort(cFFTW)
						b.ReportMetric(cOurs[0], "ours-cpu-min-ns")
						b.ReportMetric(cFFTW[0], "fftw-cpu-min-ns")
						b.ReportMetric(cOurs[0]/cFFTW[0], "ratio-cpu-min")
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

// threadCPU is the calling thread's CPU time in nanoseconds.
func threadCPU() int64 {
	const clockThreadCPUTimeID = 3
	var ts syscall.Timespec
	if _, _, e := syscall.Syscall(syscall.SYS_CLOCK_GETTIME, clockThreadCPUTimeID, uintptr(unsafe.Pointer(&ts)), 0); e != 0 {
		panic(e)
	}
	return ts.Nano()
}
