package simulate

import (
	"fmt"
	"math"

	"github.com/kspaced/kspaced/mri"
)

// View says how a simulated acquisition sees a slice of a volume: the
// matrix, pixel size, in-plane rotation and flips vary between hospitals and
// protocols, and a prior meant for any of them should see them all.
type View struct {
	Rows, Cols int
	PixelMM    float64 // square pixels; the field of view is Rows·PixelMM × Cols·PixelMM
	RotateDeg  float64 // in-plane rotation about the slice centre
	FlipRows   bool    // upside down
	FlipCols   bool    // left–right
}

// Anatomy resamples slice index along axis (Volume.Slice's convention) of
// vol into v, centred on the slice's centre, with a tent kernel as wide as
// the larger of the source and target pixels (area-like averaging when the
// pixels grow, linear interpolation otherwise). Outside the volume is 0
// (air). Values are magnitudes in the volume's units.
func Anatomy(vol *Volume, axis, index int, v View) ([]float32, error) {
	src, sr, sc := vol.Slice(axis, index)
	if src == nil {
		return nil, fmt.Errorf("anatomy: no slice %d along axis %d", index, axis)
	}
	if v.Rows < 1 || v.Cols < 1 || v.Rows > mri.MaxDim || v.Cols > mri.MaxDim || !(v.PixelMM > 0) || v.PixelMM > 100 || math.IsNaN(v.RotateDeg) {
		return nil, fmt.Errorf("anatomy: view %+v", v)
	}
	// In-plane spacings of the slice (rows, cols), as Slice orders them.
	sp := vol.Spacing
	rowMM, colMM := map[int][2]float64{2: {sp[1], sp[0]}, 1: {sp[2], sp[0]}, 0: {sp[2], sp[1]}}[axis][0],
		map[int][2]float64{2: {sp[1], sp[0]}, 1: {sp[2], sp[0]}, 0: {sp[2], sp[1]}}[axis][1]
	if !(rowMM > 0) {
		rowMM = 1
	}
	if !(colMM > 0) {
		colMM = 1
	}
	return resampleView(src, sr, sc, rowMM, colMM, v), nil
}

// resampleView samples an sr×sc image with pixel sizes rowMM×colMM.
func resampleView(src []float32, sr, sc int, rowMM, colMM float64, v View) []float32 {
	out := make([]float32, v.Rows*v.Cols)
	sin, cos := math.Sincos(v.RotateDeg * math.Pi / 180)
	// Kernel radii in source pixels.
	rr, rc := math.Max(1, v.PixelMM/rowMM), math.Max(1, v.PixelMM/colMM)
	cy, cx := float64(sr-1)/2, float64(sc-1)/2
	for i := 0; i < v.Rows; i++ {
		for j := 0; j < v.Cols; j++ {
			// Target pixel centre in mm about the view centre, flipped, rotated.
			y := (float64(i) - float64(v.Rows-1)/2) * v.PixelMM
			x := (float64(j) - float64(v.Cols-1)/2) * v.PixelMM
			if v.FlipRows {
				y = -y
			}
			if v.FlipCols {
				x = -x
			}
			ys, xs := cos*y-sin*x, sin*y+cos*x
			u, w := cy+ys/rowMM, cx+xs/colMM // source pixel coordinates
			var sum, wsum float64
			for a := int(math.Ceil(u - rr)); a <= int(math.Floor(u+rr)); a++ {
				wa := 1 - math.Abs(float64(a)-u)/rr
				if wa <= 0 {
					continue
				}
				for b := int(math.Ceil(w - rc)); b <= int(math.Floor(w+rc)); b++ {
					wb := 1 - math.Abs(float64(b)-w)/rc
					if wb <= 0 {
						continue
					}
					wsum += wa * wb
					if a >= 0 && a < sr && b >= 0 && b < sc {
						sum += wa * wb * float64(src[a*sc+b])
					}
				}
			}
			if wsum > 0 {
				out[i*v.Cols+j] = float32(sum / wsum)
			}
		}
	}
	return out
}
