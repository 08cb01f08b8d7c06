package vexp

import (
	"math"
	"math/rand/v2"
	"testing"
)

// Affine against float64 math.Exp: relative error below 4e-7 in range, +Inf
// above 88 and 0 below −87 (as exp32), and only whole blocks of 8 done.
func TestAffineAgainstMathExp(t *testing.T) {
	if !Enabled {
		t.Skip("no AVX2+FMA kernel on this CPU")
	}
	rng := rand.New(rand.NewPCG(1, 1))
	src := make([]float32, 4099)
	for i := range src {
		src[i] = float32(-100 + 200*rng.Float64())
	}
	copy(src, []float32{0, 1, -1, 88, 88.001, -87, -87.001, 0.5, -0.3465736, 0.3465736, 1e-8, -1e-8, 50, -50, 87.9, -86.9})
	for _, ab := range [][2]float32{{1, 0}, {1, -3.5}, {-1, 0}, {0.5, 2}} {
		a, b := ab[0], ab[1]
		dst := make([]float32, len(src))
		for i := range dst {
			dst[i] = -1 // marks values Affine did not write
		}
		k := Affine(dst, src, a, b)
		if k != len(src)&^7 {
			t.Fatalf("did %d of %d values", k, len(src))
		}
		worst := 0.0
		for i := range k {
			x := a*src[i] + b
			got := float64(dst[i])
			switch {
			case x > 88:
				if !math.IsInf(got, 1) {
					t.Fatalf("exp(%v) = %v, want +Inf", x, got)
				}
			case x < -87:
				if got != 0 {
					t.Fatalf("exp(%v) = %v, want 0", x, got)
				}
			default:
				want := math.Exp(float64(x))
				worst = max(worst, math.Abs(got-want)/want)
			}
		}
		for i := k; i < len(dst); i++ {
			if dst[i] != -1 {
				t.Fatalf("value %d past the blocks of 8 written", i)
			}
		}
		if worst > 4e-7 {
			t.Errorf("a=%v b=%v: relative error up to %.2e against math.Exp", a, b, worst)
		}
	}
	if Affine(make([]float32, 7), make([]float32, 7), 1, 0) != 0 {
		t.Error("fewer than 8 values: want none done")
	}
}

func BenchmarkAffine(b *testing.B) {
	src := make([]float32, 1600)
	dst := make([]float32, 1600)
	for i := range src {
		src[i] = -float32(i) / 100
	}
	for b.Loop() {
		Affine(dst, src, 1, 0)
	}
}

// AffineSum, Scale and Max against plain loops.
func TestSumScaleMax(t *testing.T) {
	if !Enabled {
		t.Skip("no AVX2+FMA kernel on this CPU")
	}
	rng := rand.New(rand.NewPCG(2, 2))
	for _, n := range []int{8, 16, 1603} {
		src := make([]float32, n)
		for i := range src {
			src[i] = float32(5 * rng.NormFloat64())
		}
		src[n/2] = 40 // the largest, away from the ends
		dst := make([]float32, n)
		k, sum := AffineSum(dst, src, 1, -3)
		var want float64
		for i := range k {
			want += float64(dst[i])
			if e := math.Exp(float64(src[i] - 3)); math.Abs(float64(dst[i])-e) > 4e-7*e {
				t.Fatalf("n=%d: exp %v, want %v", n, dst[i], e)
			}
		}
		if k != n&^7 || math.Abs(float64(sum)-want) > 1e-5*want {
			t.Errorf("n=%d: AffineSum did %d, sum %v, want %v", n, k, sum, want)
		}
		k, m := Max(src)
		wm := float32(math.Inf(-1))
		for _, v := range src[:k] {
			wm = max(wm, v)
		}
		if k != n&^7 || m != wm {
			t.Errorf("n=%d: Max %v of %d, want %v", n, m, k, wm)
		}
		c := append([]float32(nil), src...)
		k = Scale(c, 0.25)
		for i, v := range c {
			w := src[i]
			if i < k {
				w *= 0.25
			}
			if v != w {
				t.Fatalf("n=%d: Scale value %d = %v, want %v", n, i, v, w)
			}
		}
	}
}
