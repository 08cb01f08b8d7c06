package nn

import (
	"os"
	"testing"
)

var benchGeom = ConvGeom{N: 8, Cin: 64, H: 64, W: 64, Cout: 64, K: 3, Pad: 1}

func benchConvSetup(b *testing.B) (c *CPU, x, w, bias, y, dy, dx, dw, db, ws Buffer) {
	c = NewCPU()
	g := benchGeom
	x, w, bias = c.Alloc(g.N*g.Cin*g.H*g.W), c.Alloc(g.Cout*g.Cin*9), c.Alloc(g.Cout)
	y, dy = c.Alloc(g.N*g.Cout*g.H*g.W), c.Alloc(g.N*g.Cout*g.H*g.W)
	dx, dw, db = c.Alloc(x.N), c.Alloc(w.N), c.Alloc(g.Cout)
	ws = c.Alloc(c.ConvWorkspace(g))
	for i := range x.Host {
		x.Host[i] = float32(i%13) - 6
	}
	for i := range w.Host {
		w.Host[i] = float32(i%7) - 3
	}
	return
}

func convFlops(g ConvGeom) float64 {
	return 2 * float64(g.N*g.Cout*g.OutH()*g.OutW()) * float64(g.Cin*g.K*g.K)
}

func BenchmarkConvForward(b *testing.B) {
	c, x, w, bias, y, _, _, _, _, ws := benchConvSetup(b)
	b.ReportAllocs()
	for b.Loop() {
		c.ConvForward(y, x, w, bias, ws, benchGeom)
	}
	b.ReportMetric(convFlops(benchGeom)*float64(b.N)/b.Elapsed().Seconds()/1e9, "GFLOP/s")
}

func BenchmarkConvBackward(b *testing.B) {
	c, x, w, _, _, dy, dx, dw, db, ws := benchConvSetup(b)
	b.ReportAllocs()
	for b.Loop() {
		c.ConvBackward(dx, dw, db, dy, x, w, ws, benchGeom)
	}
	b.ReportMetric(2*convFlops(benchGeom)*float64(b.N)/b.Elapsed().Seconds()/1e9, "GFLOP/s")
}

func BenchmarkSgemmSameFlops(b *testing.B) {
	c := NewCPU()
	m := 1065 // ∛(flops/2) for the conv above
	a, bb, cc := c.Alloc(m*m), c.Alloc(m*m), c.Alloc(m*m)
	for b.Loop() {
		c.Gemm(false, false, m, m, m, 1, a, m, bb, m, 0, cc, m)
	}
	b.ReportMetric(2*float64(m)*float64(m)*float64(m)*float64(b.N)/b.Elapsed().Seconds()/1e9, "GFLOP/s")
}

// BenchmarkEngineReport prints BenchEngine's side-by-side table.
func BenchmarkEngineReport(b *testing.B) {
	for b.Loop() {
		if err := BenchEngine(os.Stdout); err != nil {
			b.Fatal(err)
		}
	}
}
