package nn

import (
	"fmt"
	"io"
	"math"
	"math/rand/v2"
	"runtime"
	"time"
)

// ConvBench holds the throughput (GFLOP/s) of one stride-1 convolution next
// to OpenBLAS sgemm of the same FLOP count, measured interleaved in one run.
type ConvBench struct {
	Geom         ConvGeom
	GemmM        int     // the reference sgemm is GemmM×GemmM×GemmM
	Gemm         float64 // sgemm with OpenBLAS threads = GOMAXPROCS
	Forward      float64 // ConvForward
	Backward     float64 // ConvBackward with data, filter and bias gradients
	BackwardData float64 // ConvBackward with the data gradient only (a VJP)
	// The same with single-threaded OpenBLAS and the convolution split
	// across Go workers instead.
	SplitForward, SplitBackward, SplitBackwardData float64
	GoMaxProcs                                     int
}

// BenchConv measures g on the CPU backend: each figure is the best of reps
// timed runs, taken round-robin so that load from elsewhere on the machine
// hits all of them alike. It changes OpenBLAS's thread count while running
// and restores it.
func BenchConv(g ConvGeom, reps int) ConvBench {
	c := NewCPU()
	r := rand.New(rand.NewPCG(1, 1))
	fill := func(n int) Buffer {
		b := c.Alloc(n)
		for i := range b.Host {
			b.Host[i] = float32(r.NormFloat64())
		}
		return b
	}
	x := fill(g.N * g.Cin * g.H * g.W)
	w := fill(g.Cout * g.Cin * g.K * g.K)
	bias := fill(g.Cout)
	y := c.Alloc(g.N * g.Cout * g.OutH() * g.OutW())
	dy := fill(y.N)
	dx, dw, db := c.Alloc(x.N), c.Alloc(w.N), c.Alloc(g.Cout)
	ws := c.Alloc(c.ConvWorkspace(g))
	flops := 2 * float64(g.N*g.Cout*g.OutH()*g.OutW()) * float64(g.Cin*g.K*g.K)
	m := int(math.Round(math.Cbrt(flops / 2)))
	a, b, cc := fill(m*m), fill(m*m), c.Alloc(m*m)

	procs := runtime.GOMAXPROCS(0)
	saved := BLASThreads()
	defer SetBLASThreads(saved)
	best := make([]float64, 7)
	for i := range best {
		best[i] = math.Inf(1)
	}
	timeit := func(i int, f func()) {
		t := time.Now()
		f()
		best[i] = math.Min(best[i], time.Since(t).Seconds())
	}
	for rep := 0; rep <= reps; rep++ { // rep 0 warms up
		for split := 0; split < 2; split++ {
			c.goSplit = split == 1
			SetBLASThreads(procs)
			if c.goSplit {
				SetBLASThreads(1)
			} else {
				timeit(0, func() { c.Gemm(false, false, m, m, m, 1, a, m, b, m, 0, cc, m) })
			}
			o := 1 + 3*split
			timeit(o, func() { c.ConvForward(y, x, w, bias, ws, g) })
			timeit(o+1, func() { c.ConvBackward(dx, dw, db, dy, x, w, ws, g) })
			timeit(o+2, func() { c.ConvBackward(dx, Buffer{}, Buffer{}, dy, x, w, ws, g) })
		}
		if rep == 0 {
			for i := range best {
				best[i] = math.Inf(1)
			}
		}
	}
	gf := 2 * float64(m) * float64(m) * float64(m)
	return ConvBench{Geom: g, GemmM: m, GoMaxProcs: procs, Gemm: gf / best[0] / 1e9,
		Forward: flops / best[1] / 1e9, Backward: 2 * flops / best[2] / 1e9, BackwardData: flops / best[3] / 1e9,
		SplitForward: flops / best[4] / 1e9, SplitBackward: 2 * flops / best[5] / 1e9, SplitBackwardData: flops / best[6] / 1e9}
}

// BenchEngine writes the engine's headline figures: the 64→64 3×3
// convolution at 64×64, batch 8, forward and backward, beside OpenBLAS
// sgemm of the same FLOP count measured in the same run.
func BenchEngine(w io.Writer) error {
	g := ConvGeom{N: 8, Cin: 64, H: 64, W: 64, Cout: 64, K: 3, Pad: 1}
	b := BenchConv(g, 5)
	pct := func(v float64) float64 { return 100 * v / b.Gemm }
	fmt.Fprintf(w, "engine: CPU backend, GOMAXPROCS %d; best of 5 interleaved runs\n", b.GoMaxProcs)
	fmt.Fprintf(w, "  %-44s %7.1f GFLOP/s\n", fmt.Sprintf("OpenBLAS sgemm %d³ (%d threads)", b.GemmM, b.GoMaxProcs), b.Gemm)
	fmt.Fprintf(w, "  conv 3×3 64→64, 64×64, batch 8:    %18s %18s\n", "OpenBLAS threads", "Go split, BLAS 1T")
	fmt.Fprintf(w, "    forward                   %8.1f GFLOP/s %3.0f%% %8.1f GFLOP/s %3.0f%%\n", b.Forward, pct(b.Forward), b.SplitForward, pct(b.SplitForward))
	fmt.Fprintf(w, "    backward (dx, dw, db)     %8.1f GFLOP/s %3.0f%% %8.1f GFLOP/s %3.0f%%\n", b.Backward, pct(b.Backward), b.SplitBackward, pct(b.SplitBackward))
	fmt.Fprintf(w, "    backward (dx only, VJP)   %8.1f GFLOP/s %3.0f%% %8.1f GFLOP/s %3.0f%%\n", b.BackwardData, pct(b.BackwardData), b.SplitBackwardData, pct(b.SplitBackwardData))
	return nil
}
