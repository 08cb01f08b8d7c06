//go:build cuda

package nn

import (
	"fmt"
	"io"
	"math"
	"math/rand/v2"
	"time"

	"github.com/kspaced/kspaced/internal/gpu"
)

// CUDAConvBench holds throughputs (TFLOP/s) of one convolution on the
// CUDA backend next to cuBLAS sgemm, measured interleaved in one run.
type CUDAConvBench struct {
	Geom  ConvGeom
	TF32  bool
	GemmM int     // the same-FLOP sgemm is GemmM³
	Gemm  float64 // sgemm of the convolution's FLOP count
	PeakM int
	Peak  float64 // sgemm PeakM³, the library's best case
	// Forward, Backward (data, filter and bias gradients) and BackwardData
	// (the VJP MMPS needs).
	Forward, Backward, BackwardData float64
}

// BenchCUDAConv measures g on ctx, with a peakM³ sgemm as the library's
// best case (8192 on a real GPU): each figure is the best of reps runs
// after a warm-up, each run timed from a synchronised device to the end of
// its own work.
func BenchCUDAConv(ctx *gpu.Context, g ConvGeom, tf32 bool, reps, peakM int) (CUDAConvBench, error) {
	be, err := NewCUDA(ctx, CUDAOptions{TF32: tf32})
	if err != nil {
		return CUDAConvBench{}, err
	}
	defer be.Close()
	r := rand.New(rand.NewPCG(1, 1))
	var bufs []Buffer
	fill := func(n int) Buffer {
		b := be.Alloc(n)
		v := make([]float32, n)
		for i := range v {
			v[i] = float32(r.NormFloat64())
		}
		be.Upload(b, v)
		bufs = append(bufs, b)
		return b
	}
	defer func() {
		for _, b := range bufs {
			be.Free(b)
		}
	}()
	x := fill(g.N * g.Cin * g.H * g.W)
	w := fill(g.Cout * g.Cin * g.K * g.K)
	bias := fill(g.Cout)
	y := fill(g.N * g.Cout * g.OutH() * g.OutW())
	dy := fill(y.N)
	dx, dw, db := fill(x.N), fill(w.N), fill(g.Cout)
	ws := fill(max(1, be.ConvWorkspace(g)))
	flops := 2 * float64(g.N*g.Cout*g.OutH()*g.OutW()) * float64(g.Cin*g.K*g.K)
	m := int(math.Round(math.Cbrt(flops / 2)))
	a, b, c := fill(m*m), fill(m*m), fill(m*m)
	pm := peakM
	pa, pb, pc := fill(pm*pm), fill(pm*pm), fill(pm*pm)

	best := make([]float64, 5)
	for i := range best {
		best[i] = math.Inf(1)
	}
	timeit := func(i int, f func()) {
		be.Sync()
		t := time.Now()
		f()
		be.Sync()
		best[i] = math.Min(best[i], time.Since(t).Seconds())
	}
	for rep := 0; rep <= reps; rep++ {
		timeit(0, func() { be.Gemm(false, false, pm, pm, pm, 1, pa, pm, pb, pm, 0, pc, pm) })
		timeit(1, func() { be.Gemm(false, false, m, m, m, 1, a, m, b, m, 0, c, m) })
		timeit(2, func() { be.ConvForward(y, x, w, bias, ws, g) })
		timeit(3, func() { be.ConvBackward(dx, dw, db, dy, x, w, ws, g) })
		timeit(4, func() { be.ConvBackward(dx, Buffer{}, Buffer{}, dy, x, w, ws, g) })
		if rep == 0 {
			for i := range best {
				best[i] = math.Inf(1)
			}
		}
	}
	if err := be.Sync(); err != nil {
		return CUDAConvBench{}, err
	}
	tf := func(f, s float64) float64 { return f / s / 1e12 }
	cube := func(n int) float64 { return 2 * float64(n) * float64(n) * float64(n) }
	return CUDAConvBench{Geom: g, TF32: tf32, GemmM: m, PeakM: pm,
		Peak: tf(cube(pm), best[0]), Gemm: tf(cube(m), best[1]),
		Forward: tf(flops, best[2]), Backward: tf(2*flops, best[3]), BackwardData: tf(flops, best[4])}, nil
}

// BenchCUDAEngine writes the CUDA engine's figures for two convolutions, in
// FP32 and TF32, beside cuBLAS sgemm measured in the same run.
func BenchCUDAEngine(w io.Writer, ctx *gpu.Context) error {
	fmt.Fprintf(w, "engine: CUDA backend on %v; best of 10 interleaved runs\n", ctx.Info())
	for _, g := range []ConvGeom{
		{N: 8, Cin: 64, H: 64, W: 64, Cout: 64, K: 3, Pad: 1},
		{N: 8, Cin: 128, H: 128, W: 128, Cout: 128, K: 3, Pad: 1},
	} {
		for _, tf32 := range []bool{false, true} {
			b, err := BenchCUDAConv(ctx, g, tf32, 10, 8192)
			if err != nil {
				return err
			}
			pct := func(v float64) float64 { return 100 * v / b.Peak }
			mode := "FP32"
			if tf32 {
				mode = "TF32"
			}
			fmt.Fprintf(w, "  conv 3×3 %d→%d, %d×%d, batch %d, %s:\n", g.Cin, g.Cout, g.H, g.W, g.N, mode)
			fmt.Fprintf(w, "    cuBLAS sgemm 8192³ (peak)   %7.2f TFLOP/s\n", b.Peak)
			fmt.Fprintf(w, "    cuBLAS sgemm %d³ (same FLOPs) %7.2f TFLOP/s %3.0f%%\n", b.GemmM, b.Gemm, pct(b.Gemm))
			fmt.Fprintf(w, "    forward                     %7.2f TFLOP/s %3.0f%%\n", b.Forward, pct(b.Forward))
			fmt.Fprintf(w, "    backward (dx, dw, db)       %7.2f TFLOP/s %3.0f%%\n", b.Backward, pct(b.Backward))
			fmt.Fprintf(w, "    backward (dx only, VJP)     %7.2f TFLOP/s %3.0f%%\n", b.BackwardData, pct(b.BackwardData))
		}
	}
	return nil
}
