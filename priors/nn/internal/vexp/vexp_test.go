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
