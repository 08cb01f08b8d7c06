package mri

import (
	"context"
	"fmt"
	"testing"
)

// Per-call costs of the pieces every reconstruction iterates on, at a
// fastMRI knee size (15 coils, 640×368) and the BART phantom size.
func BenchmarkSENSE(b *testing.B) {
	for _, sz := range [][3]int{{8, 128, 128}, {15, 640, 368}} {
		c := newSenseCase(1, sz[0], sz[1], sz[2])
		s := NewSENSE(c.maps, c.coils, c.rows, c.cols, c.mask)
		x, y := randVec(testRand(2), s.InLen()), make([]complex64, s.OutLen())
		z := make([]complex64, s.InLen())
		name := fmt.Sprintf("%dx%dx%d", sz[0], sz[1], sz[2])
		b.Run("forward/"+name, func(b *testing.B) {
			for b.Loop() {
				s.Forward(y, x)
			}
		})
		b.Run("normal/"+name, func(b *testing.B) {
			for b.Loop() {
				s.Normal(z, x)
			}
		})
	}
}

func BenchmarkWavelet(b *testing.B) {
	for _, sz := range [][2]int{{128, 128}, {640, 368}} {
		w, _ := NewWavelet(Daubechies2, sz[0], sz[1], 0)
		x := randVec(testRand(3), sz[0]*sz[1])
		b.Run(fmt.Sprintf("db2-forward+inverse/%dx%d", sz[0], sz[1]), func(b *testing.B) {
			for b.Loop() {
				w.Forward(x, x)
				w.Inverse(x, x)
			}
		})
	}
}

func BenchmarkPoissonDiscMask(b *testing.B) {
	for _, sz := range [][2]int{{128, 128}, {320, 320}} {
		b.Run(fmt.Sprintf("%dx%d-accel6", sz[0], sz[1]), func(b *testing.B) {
			for b.Loop() {
				if _, err := PoissonDiscMask(sz[0], sz[1], 6, 24, 1); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

func BenchmarkCGSENSE15Coils(b *testing.B) {
	c := newSenseCase(1, 15, 640, 368)
	normaliseMaps(c.maps, c.coils, 640*368)
	s := NewSENSE(c.maps, c.coils, c.rows, c.cols, c.mask)
	y := randVec(testRand(4), s.OutLen())
	x := make([]complex64, s.InLen())
	for b.Loop() {
		clear(x)
		CGSENSE(context.Background(), x, s, y, 0.01, 10, 0, nil)
	}
}
