package nn

import (
	"fmt"
	"io"
	"math"
	"math/rand/v2"
	"runtime"
	"time"
)

// ConvBench holds throughput figures of one run of BenchConv.
type ConvBench struct {
	Geom         ConvGeom
	GemmM        int     // the reference sgemm is GemmM×GemmM×GemmM
	Gemm         float64 // GFLOP/s of OpenBLAS sgemm with the conv's FLOP count
	Forward      float64 // GFLOP/s of ConvForward
	Backward     float64 // GFLOP/s of ConvBackward (data and filter gradients)
	BackwardData float64 // GFLOP/s of ConvBackward (data gradient only, as in a VJP)
	ForwardSec   float64 // seconds per ConvForward
	BackwardSec  float64
	GemmSec      float64
	BLASThreads  int
	GoMaxProcs   int
}

// timeBest runs f reps times after one warm-up and returns the fastest run,
// which is the least disturbed by other load on the machine.
func timeBest(reps int, f func()) float64 {
	f()
	best := math.Inf(1)
	for i := 0; i < reps; i++ {
		t := time.Now()
		f()
		best = math.Min(best, time.Since(t).Seconds())
	}
	return best
}

// BenchConv measures a stride-1 convolution on the CPU backend beside a
// square sgemm of the same FLOP count, in one run, so the ratio is fair.
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

	res := ConvBench{Geom: g, GemmM: m, BLASThreads: BLASThreads(), GoMaxProcs: runtime.GOMAXPROCS(0)}
	res.GemmSec = timeBest(reps, func() { c.Gemm(false, false, m, m, m, 1, a, m, b, m, 0, cc, m) })
	res.ForwardSec = timeBest(reps, func() { c.ConvForward(y, x, w, bias, ws, g) })
	res.BackwardSec = timeBest(reps, func() { c.ConvBackward(dx, dw, db, dy, x, w, ws, g) })
	bd := timeBest(reps, func() { c.ConvBackward(dx, Buffer{}, Buffer{}, dy, x, w, ws, g) })
	gf := 2 * float64(m) * float64(m) * float64(m)
	res.Gemm = gf / res.GemmSec / 1e9
	res.Forward = flops / res.ForwardSec / 1e9
	res.Backward = 2 * flops / res.BackwardSec / 1e9
	res.BackwardData = flops / bd / 1e9
	return res
}

// BenchEngine writes the engine's headline figures: the 64→64 3×3
// convolution at 64×64, batch 8, forward and backward, beside OpenBLAS
// sgemm of the same FLOP count measured in the same run.
func BenchEngine(w io.Writer) error {
	g := ConvGeom{N: 8, Cin: 64, H: 64, W: 64, Cout: 64, K: 3, Pad: 1}
	b := BenchConv(g, 5)
	fmt.Fprintf(w, "engine: CPU backend, GOMAXPROCS %d, OpenBLAS threads %d (best of 5)\n", b.GoMaxProcs, b.BLASThreads)
	fmt.Fprintf(w, "  sgemm %d×%d×%d             %7.1f GFLOP/s  %7.2f ms\n", b.GemmM, b.GemmM, b.GemmM, b.Gemm, 1e3*b.GemmSec)
	fmt.Fprintf(w, "  conv3x3 64→64 64×64 b8 fwd    %7.1f GFLOP/s  %7.2f ms  %3.0f%% of sgemm\n", b.Forward, 1e3*b.ForwardSec, 100*b.Forward/b.Gemm)
	fmt.Fprintf(w, "  conv3x3 backward (dx+dw+db)  %7.1f GFLOP/s  %7.2f ms  %3.0f%% of sgemm\n", b.Backward, 1e3*b.BackwardSec, 100*b.Backward/b.Gemm)
	fmt.Fprintf(w, "  conv3x3 backward (dx only)   %7.1f GFLOP/s             %3.0f%% of sgemm\n", b.BackwardData, 100*b.BackwardData/b.Gemm)
	return nil
}
