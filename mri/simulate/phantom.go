package simulate

import (
	"math"
	"math/rand/v2"

	"github.com/kspaced/kspaced/mri"
)

// ellipse is one additive ellipse in the square [−1, 1]², y pointing up.
type ellipse struct {
	value, a, b, x0, y0, phi float64 // phi in degrees, counter-clockwise
}

// sheppLogan is the modified (Toft) Shepp–Logan phantom, with more contrast
// between the brain structures than the original.
var sheppLogan = []ellipse{
	{1, 0.69, 0.92, 0, 0, 0},
	{-0.8, 0.6624, 0.8740, 0, -0.0184, 0},
	{-0.2, 0.1100, 0.3100, 0.22, 0, -18},
	{-0.2, 0.1600, 0.4100, -0.22, 0, 18},
	{0.1, 0.2100, 0.2500, 0, 0.35, 0},
	{0.1, 0.0460, 0.0460, 0, 0.1, 0},
	{0.1, 0.0460, 0.0460, 0, -0.1, 0},
	{0.1, 0.0460, 0.0230, -0.08, -0.605, 0},
	{0.1, 0.0230, 0.0230, 0, -0.606, 0},
	{0.1, 0.0230, 0.0460, 0.06, -0.605, 0},
}

// SheppLogan is the n×n modified Shepp–Logan phantom (values 0…1) sampled
// at pixel centres, row 0 at the top (y = +1). It is nil when n is outside
// [1, mri.MaxDim].
func SheppLogan(n int) []float32 {
	if n < 1 || n > mri.MaxDim {
		return nil
	}
	return rasterise(n, sheppLogan)
}

// RandomEllipses is an n×n image of a large base ellipse holding 4 to 12
// smaller random ellipses, all inside the unit disc, with values in [0, 1.5].
// It is nil when n is outside [1, mri.MaxDim] or rng is nil.
func RandomEllipses(n int, rng *rand.Rand) []float32 {
	if n < 1 || n > mri.MaxDim || rng == nil {
		return nil
	}
	base := ellipse{value: 0.4 + 0.4*rng.Float64(), a: 0.6 + 0.3*rng.Float64(), b: 0.6 + 0.3*rng.Float64(), phi: 180 * rng.Float64()}
	es := []ellipse{base}
	for k := 4 + rng.IntN(9); k > 0; k-- {
		r := 0.05 + 0.3*rng.Float64()
		// Centre inside the base's inscribed disc, shrunk so the ellipse fits.
		lim := math.Max(0, math.Min(base.a, base.b)-r)
		rad, th := lim*math.Sqrt(rng.Float64()), 2*math.Pi*rng.Float64()
		es = append(es, ellipse{
			value: 0.7 * (2*rng.Float64() - 1),
			a:     r, b: r * (0.4 + 0.6*rng.Float64()),
			x0: rad * math.Cos(th), y0: rad * math.Sin(th),
			phi: 180 * rng.Float64(),
		})
	}
	img := rasterise(n, es)
	for i, v := range img {
		img[i] = min(max(v, 0), 1.5)
	}
	return img
}

func rasterise(n int, es []ellipse) []float32 {
	img := make([]float32, n*n)
	for _, e := range es {
		s, c := math.Sincos(e.phi * math.Pi / 180)
		for r := 0; r < n; r++ {
			y := 1 - (2*float64(r)+1)/float64(n)
			for col := 0; col < n; col++ {
				x := (2*float64(col)+1)/float64(n) - 1
				dx, dy := x-e.x0, y-e.y0
				u, v := dx*c+dy*s, -dx*s+dy*c
				if u*u/(e.a*e.a)+v*v/(e.b*e.b) <= 1 {
					img[r*n+col] += float32(e.value)
				}
			}
		}
	}
	return img
}

// Resize resamples a rows×cols image to newRows×newCols, one axis at a time
// with pixel centres aligned: linear interpolation (edges clamped) along an
// axis that grows, exact area averaging along one that shrinks. It is nil
// for sizes outside [1, mri.MaxDim] or a wrong length.
func Resize(img []float32, rows, cols, newRows, newCols int) []float32 {
	for _, d := range []int{rows, cols, newRows, newCols} {
		if d < 1 || d > mri.MaxDim {
			return nil
		}
	}
	if len(img) != rows*cols {
		return nil
	}
	// Columns first, then rows; each pass is a small dense weight table.
	tmp := make([]float32, rows*newCols)
	wc := resampleWeights(cols, newCols)
	for r := 0; r < rows; r++ {
		for _, w := range wc {
			tmp[r*newCols+w.dst] += float32(w.w * float64(img[r*cols+w.src]))
		}
	}
	out := make([]float32, newRows*newCols)
	for _, w := range resampleWeights(rows, newRows) {
		for c := 0; c < newCols; c++ {
			out[w.dst*newCols+c] += float32(w.w * float64(tmp[w.src*newCols+c]))
		}
	}
	return out
}

type weight struct {
	dst, src int
	w        float64
}

// resampleWeights lists the contributions of input samples to output
// samples along one axis of n → m samples.
func resampleWeights(n, m int) []weight {
	var ws []weight
	scale := float64(n) / float64(m)
	if m >= n { // linear, pixel-centre aligned, clamped at the edges
		for j := 0; j < m; j++ {
			x := (float64(j)+0.5)*scale - 0.5
			x = math.Min(math.Max(x, 0), float64(n-1))
			i0 := int(math.Floor(x))
			f := x - float64(i0)
			if i0 >= n-1 {
				i0, f = n-1, 0
			}
			ws = append(ws, weight{j, i0, 1 - f})
			if f > 0 {
				ws = append(ws, weight{j, i0 + 1, f})
			}
		}
		return ws
	}
	// Area: output j covers input [j·scale, (j+1)·scale).
	for j := 0; j < m; j++ {
		lo, hi := float64(j)*scale, float64(j+1)*scale
		for i := int(math.Floor(lo)); i < n && float64(i) < hi; i++ {
			ov := math.Min(hi, float64(i+1)) - math.Max(lo, float64(i))
			if ov > 0 {
				ws = append(ws, weight{j, i, ov / scale})
			}
		}
	}
	return ws
}

// SmoothPhase is a random smooth phase map in radians: a cubic polynomial
// in the image coordinates, centred on zero and scaled to a peak-to-peak
// range drawn from [2, 5] radians. It is nil for sizes outside
// [1, mri.MaxDim] or a nil rng.
func SmoothPhase(rows, cols int, rng *rand.Rand) []float32 {
	if rows < 1 || rows > mri.MaxDim || cols < 1 || cols > mri.MaxDim || rng == nil {
		return nil
	}
	var coef [4][4]float64 // coef[i][j]·xⁱ·yʲ, i+j ≤ 3
	for i := 0; i < 4; i++ {
		for j := 0; i+j < 4; j++ {
			if i+j > 0 {
				coef[i][j] = rng.NormFloat64()
			}
		}
	}
	ptp := 2 + 3*rng.Float64()
	ph := make([]float64, rows*cols)
	lo, hi := math.Inf(1), math.Inf(-1)
	for r := 0; r < rows; r++ {
		y := 1 - (2*float64(r)+1)/float64(rows)
		for c := 0; c < cols; c++ {
			x := (2*float64(c)+1)/float64(cols) - 1
			var v, xi float64 = 0, 1
			for i := 0; i < 4; i++ {
				yj := 1.0
				for j := 0; i+j < 4; j++ {
					v += coef[i][j] * xi * yj
					yj *= y
				}
				xi *= x
			}
			ph[r*cols+c] = v
			lo, hi = math.Min(lo, v), math.Max(hi, v)
		}
	}
	out := make([]float32, len(ph))
	s := 0.0
	if hi > lo {
		s = ptp / (hi - lo)
	}
	for i, v := range ph {
		out[i] = float32((v - (lo+hi)/2) * s)
	}
	return out
}

// CoilMaps simulates smooth sensitivities of coils evenly spaced on a circle
// around the field of view: the on-axis falloff of a circular loop,
// ρ³/(ρ² + d²)^{3/2}, times a phase rising linearly across the coil. The
// maps are normalised so that Σ_c |S_c|² = 1 at every pixel. Layout
// [coil][row][col]; nil for sizes outside [1, mri.MaxCoils] and
// [1, mri.MaxDim].
func CoilMaps(coils, rows, cols int) []complex64 {
	if coils < 1 || coils > mri.MaxCoils || rows < 1 || rows > mri.MaxDim || cols < 1 || cols > mri.MaxDim {
		return nil
	}
	const radius, loop = 1.4, 0.9 // coil ring and loop radius, in half fields of view
	npix := rows * cols
	maps := make([]complex64, coils*npix)
	s := make([]complex128, coils)
	for r := 0; r < rows; r++ {
		y := 1 - (2*float64(r)+1)/float64(rows)
		for c := 0; c < cols; c++ {
			x := (2*float64(c)+1)/float64(cols) - 1
			var rss float64
			for k := 0; k < coils; k++ {
				th := 2*math.Pi*float64(k)/float64(coils) + 0.3
				cx, cy := radius*math.Cos(th), radius*math.Sin(th)
				d2 := (x-cx)*(x-cx) + (y-cy)*(y-cy)
				mag := math.Pow(loop*loop/(loop*loop+d2), 1.5)
				// Phase: an offset per coil plus a gentle tilt along the ring tangent.
				ph := th + 0.8*(-math.Sin(th)*x+math.Cos(th)*y)
				s[k] = complex(mag*math.Cos(ph), mag*math.Sin(ph))
				rss += mag * mag
			}
			inv := 1 / math.Sqrt(rss)
			for k := 0; k < coils; k++ {
				maps[k*npix+r*cols+c] = complex64(s[k] * complex(inv, 0))
			}
		}
	}
	return maps
}

// PadCenter zero-pads an r×c image to rows×cols (rows ≥ r, cols ≥ c).
func PadCenter(src []float32, r, c, rows, cols int) []float32 {
	dst := make([]float32, rows*cols)
	r0, c0 := (rows-r)/2, (cols-c)/2
	for i := 0; i < r; i++ {
		copy(dst[(r0+i)*cols+c0:], src[i*c:(i+1)*c])
	}
	return dst
}
