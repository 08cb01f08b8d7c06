package simulate

import (
	"math"
	"math/rand/v2"
	"testing"
)

// TestResampleViewIdentityAndSymmetries: at the source's own pixel size the
// view is the centred crop/pad of the slice; flips and a 90° rotation are
// the index permutations they should be.
func TestResampleViewIdentityAndSymmetries(t *testing.T) {
	t.Parallel()
	const sr, sc = 9, 12
	r := rand.New(rand.NewPCG(1, 2))
	src := make([]float32, sr*sc)
	for i := range src {
		src[i] = r.Float32()
	}
	at := func(img []float32, cols, i, j int) float32 { return img[i*cols+j] }
	// 7×10 window, same pixel size: centred crop (both offsets integral).
	id := resampleView(src, sr, sc, 1, 1, View{Rows: 7, Cols: 10, PixelMM: 1})
	for i := 0; i < 7; i++ {
		for j := 0; j < 10; j++ {
			if d := math.Abs(float64(at(id, 10, i, j) - at(src, sc, i+1, j+1))); d > 1e-6 {
				t.Fatalf("identity (%d,%d) off by %g", i, j, d)
			}
		}
	}
	fl := resampleView(src, sr, sc, 1, 1, View{Rows: sr, Cols: sc, PixelMM: 1, FlipRows: true, FlipCols: true})
	for i := 0; i < sr; i++ {
		for j := 0; j < sc; j++ {
			if d := math.Abs(float64(at(fl, sc, i, j) - at(src, sc, sr-1-i, sc-1-j))); d > 1e-6 {
				t.Fatalf("flip (%d,%d) off by %g", i, j, d)
			}
		}
	}
	// A square source rotated by 90°: out(i, j) = src(c−(j−c), i)… checked
	// against the rotation formula with exact integer coordinates.
	const n = 11
	sq := make([]float32, n*n)
	for i := range sq {
		sq[i] = r.Float32()
	}
	rot := resampleView(sq, n, n, 1, 1, View{Rows: n, Cols: n, PixelMM: 1, RotateDeg: 90})
	for i := 0; i < n; i++ {
		for j := 0; j < n; j++ {
			y, x := float64(i-n/2), float64(j-n/2)
			u, w := n/2+int(math.Round(-x)), n/2+int(math.Round(y)) // (cos·y − sin·x, sin·y + cos·x) at 90°
			if d := math.Abs(float64(at(rot, n, i, j) - at(sq, n, u, w))); d > 1e-5 {
				t.Fatalf("rotation (%d,%d) off by %g", i, j, d)
			}
		}
	}
	// Doubling the pixel size averages: a constant stays constant inside,
	// and the mean is kept to within the edge effects.
	ones := make([]float32, 40*40)
	for i := range ones {
		ones[i] = 1
	}
	big := resampleView(ones, 40, 40, 1, 1, View{Rows: 16, Cols: 16, PixelMM: 2})
	for i, v := range big {
		if math.Abs(float64(v)-1) > 1e-6 {
			t.Fatalf("constant image at 2 mm: pixel %d is %v", i, v)
		}
	}
}
