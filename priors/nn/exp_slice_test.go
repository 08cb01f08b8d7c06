package nn

import (
	"math"
	"math/rand/v2"
	"testing"

	"github.com/kspaced/kspaced/priors/nn/internal/vexp"
)

// SiLU (forward and backward) and softmax rows long enough for the
// vectorised exp, with it and without, against float64 references.
func TestSiLUSoftmaxVectorExp(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 3))
	const n, cols = 1603, 801 // not multiples of 8: the scalar tail runs too
	x := make([]float32, n)
	dy := make([]float32, n)
	for i := range x {
		x[i] = float32(12 * rng.NormFloat64())
		dy[i] = float32(rng.NormFloat64())
	}
	x[0], x[1] = 95, -95 // past exp's range on both sides
	saved := vexp.Enabled
	defer func() { vexp.Enabled = saved }()
	for _, on := range []bool{false, saved} {
		vexp.Enabled = on
		y := make([]float32, n)
		(&siluJob{y: y, x: x}).run(0, n)
		dx := make([]float32, n)
		(&siluJob{y: dx, x: x, dy: dy}).run(0, n)
		var wy, wd float64
		for i, v := range x {
			s := 1 / (1 + math.Exp(-float64(v)))
			wy = max(wy, math.Abs(float64(y[i])-float64(v)*s)/(1+math.Abs(float64(v))))
			wd = max(wd, math.Abs(float64(dx[i])-float64(dy[i])*s*(1+float64(v)*(1-s)))/((1+math.Abs(float64(v)))*(1+math.Abs(float64(dy[i])))))
		}
		if wy > 1e-6 || wd > 1e-6 {
			t.Errorf("vector exp %v: SiLU off by %.2e, its backward by %.2e", on, wy, wd)
		}
		sy := make([]float32, 2*cols)
		(&softmaxJob{y: sy, x: x[:2*cols], cols: cols}).run(0, 2)
		var ws float64
		for r := range 2 {
			row := x[r*cols : (r+1)*cols]
			m := math.Inf(-1)
			for _, v := range row {
				m = max(m, float64(v))
			}
			var sum float64
			for _, v := range row {
				sum += math.Exp(float64(v) - m)
			}
			for i, v := range row {
				ws = max(ws, math.Abs(float64(sy[r*cols+i])-math.Exp(float64(v)-m)/sum))
			}
		}
		if ws > 1e-6 {
			t.Errorf("vector exp %v: softmax off by %.2e", on, ws)
		}
	}
}
