package nn

import (
	"testing"
)

func TestShapeSpeed(t *testing.T) {
	c := NewCPU()
	np := 8 * 66 * 66
	cols := np - 2*66 - 2
	xp, yp, w := c.Alloc(64*np), c.Alloc(64*np), c.Alloc(64*64)
	for i := range xp.Host {
		xp.Host[i] = float32(i % 5)
	}
	fl := 2 * 64 * 64 * float64(cols)
	for rep := 0; rep < 3; rep++ {
		a := timeBest(3, func() { c.Gemm(false, false, 64, cols, 64, 1, w, 64, xp.Slice(67, xp.N), np, 1, yp, np) })
		b := timeBest(3, func() { c.Gemm(false, true, 64, 64, cols, 1, yp, np, xp.Slice(67, xp.N), np, 0, w, 64) })
		d := timeBest(3, func() { c.Gemm(true, false, 64, cols, 64, 1, w, 64, yp, np, 1, xp.Slice(67, xp.N), np) })
		m := 1065
		A, B, C := c.Alloc(m*m), c.Alloc(m*m), c.Alloc(m*m)
		s := timeBest(3, func() { c.Gemm(false, false, m, m, m, 1, A, m, B, m, 0, C, m) })
		t.Logf("fwd tap %.1f  dw tap %.1f  dx tap %.1f  square %.1f GFLOP/s", fl/a/1e9, fl/b/1e9, fl/d/1e9, 2*float64(m*m*m)/s/1e9)
	}
}
