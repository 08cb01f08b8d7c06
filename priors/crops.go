package priors

import (
	"fmt"
	"math"
	"math/rand/v2"
)

// Training on crops: the M-step sees CropRows×CropCols windows of the
// training images, each resampled at a pixel scale drawn from Scales, so a
// prior learns local anatomy at several resolutions rather than one matrix
// and one field of view (and a step costs the crop, not the whole image).

// cropDataset serves crops of src. Image gives the deterministic centre
// crop at scale 1 (validation); draw gives a random crop at a random scale.
type cropDataset struct {
	src        Dataset
	rows, cols int
	scales     []float64
	full       []float32 // one source image
	tmp        []float64 // the row pass of the resampling
}

func newCropDataset(src Dataset, rows, cols int, scales []float64) (*cropDataset, error) {
	c, h, w := src.Shape()
	if rows < 1 || cols < 1 || rows > unetMaxSide || cols > unetMaxSide {
		return nil, fmt.Errorf("train: crop %d×%d", rows, cols)
	}
	if len(scales) == 0 {
		scales = []float64{1}
	}
	for _, s := range scales {
		if !(s >= 0.125 && s <= 8) {
			return nil, fmt.Errorf("train: pixel scale %g outside [0.125, 8]", s)
		}
	}
	return &cropDataset{src: src, rows: rows, cols: cols, scales: scales, full: make([]float32, c*h*w)}, nil
}

func (d *cropDataset) Len() int { return d.src.Len() }

func (d *cropDataset) Shape() (int, int, int) {
	c, _, _ := d.src.Shape()
	return c, d.rows, d.cols
}

func (d *cropDataset) Image(dst []float32, i int) error {
	if err := d.src.Image(d.full, i); err != nil {
		return err
	}
	_, h, w := d.src.Shape()
	d.resample(dst, 1, float64(h-d.rows)/2, float64(w-d.cols)/2)
	return nil
}

// draw writes a crop of image i at a scale and offset drawn from r.
func (d *cropDataset) draw(dst []float32, i int, r *rand.Rand) error {
	if err := d.src.Image(d.full, i); err != nil {
		return err
	}
	_, h, w := d.src.Shape()
	s := d.scales[r.IntN(len(d.scales))]
	// The scaled image is h·s × w·s; offsets are in its pixels.
	r0 := r.Float64() * math.Max(0, float64(h)*s-float64(d.rows))
	c0 := r.Float64() * math.Max(0, float64(w)*s-float64(d.cols))
	d.resample(dst, s, math.Floor(r0), math.Floor(c0))
	return nil
}

// resample writes the rows×cols window at offset (r0, c0) of the source
// image scaled by s (s < 1: coarser pixels). Linear interpolation with a
// triangle kernel widened to 1/s when shrinking, so fine detail is averaged
// rather than aliased; out-of-range taps mirror as reflectIndex does.
func (d *cropDataset) resample(dst []float32, s, r0, c0 float64) {
	c, h, w := d.src.Shape()
	if cap(d.tmp) < d.rows*w {
		d.tmp = make([]float64, d.rows*w)
	}
	tmp := d.tmp[:d.rows*w]
	rk := resampleKernel(d.rows, h, s, r0)
	ck := resampleKernel(d.cols, w, s, c0)
	for ch := 0; ch < c; ch++ {
		src := d.full[ch*h*w : (ch+1)*h*w]
		for i, k := range rk {
			row := tmp[i*w : (i+1)*w]
			clear(row)
			for t, idx := range k.idx {
				wt := k.w[t]
				for x, v := range src[idx*w : (idx+1)*w] {
					row[x] += wt * float64(v)
				}
			}
		}
		out := dst[ch*d.rows*d.cols : (ch+1)*d.rows*d.cols]
		for i := 0; i < d.rows; i++ {
			row := tmp[i*w : (i+1)*w]
			for j, k := range ck {
				var v float64
				for t, idx := range k.idx {
					v += k.w[t] * row[idx]
				}
				out[i*d.cols+j] = float32(v)
			}
		}
	}
}

type taps struct {
	idx []int
	w   []float64
}

// resampleKernel gives, for each of n output samples of an axis of length
// m scaled by s and offset by off output pixels, the source taps and
// weights (summing to 1).
func resampleKernel(n, m int, s, off float64) []taps {
	radius := math.Max(1, 1/s)
	out := make([]taps, n)
	for i := range out {
		x := (float64(i)+off+0.5)/s - 0.5 // source coordinate of the output centre
		lo, hi := int(math.Ceil(x-radius)), int(math.Floor(x+radius))
		var sum float64
		for k := lo; k <= hi; k++ {
			wt := 1 - math.Abs(float64(k)-x)/radius
			if wt <= 0 {
				continue
			}
			out[i].idx = append(out[i].idx, reflectIndex(abs(k), m))
			out[i].w = append(out[i].w, wt)
			sum += wt
		}
		for t := range out[i].w {
			out[i].w[t] /= sum
		}
	}
	return out
}

func abs(k int) int {
	if k < 0 {
		return -k
	}
	return k
}

// cropped wraps data for Train's crop options.
func cropped(data Dataset, opt TrainOptions) (Dataset, error) {
	if opt.CropRows < 1 || opt.CropCols < 1 {
		return nil, fmt.Errorf("train: crop %d×%d (set both sides)", opt.CropRows, opt.CropCols)
	}
	return newCropDataset(data, opt.CropRows, opt.CropCols, opt.Scales)
}

// image loads training image i: a random crop when training on crops.
func (t *trainer) image(dst []float32, i int, r *rand.Rand) error {
	if cd, ok := t.data.(*cropDataset); ok {
		return cd.draw(dst, i, r)
	}
	return t.data.Image(dst, i)
}

// CropNote describes the training crops for provenance ("" for whole images).
func CropNote(o TrainOptions) string {
	if o.CropRows <= 0 && o.CropCols <= 0 {
		return ""
	}
	sc := o.Scales
	if len(sc) == 0 {
		sc = []float64{1}
	}
	return fmt.Sprintf("%d×%d crops at pixel scales %v", o.CropRows, o.CropCols, sc)
}
