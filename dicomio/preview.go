package dicomio

import (
	"bytes"
	"fmt"
	"image"
	"image/color"
	"image/draw"
	"image/png"
	"math"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
)

// WritePreviews writes dir/preview_0001.png… one per slice: zero-filled |
// reconstruction | uncertainty, the first two in grey on one shared window
// (0 or the minimum to the reconstruction's 99.5th percentile over the
// volume), the standard deviation in a perceptually uniform colour map with
// a labelled colour bar (0 to its 99.5th percentile). Images smaller than
// 256 rows are enlarged by an integer factor. Each file is written atomically.
func WritePreviews(dir string, zeroFilled, recon, std []float32, slices, rows, cols int) ([]string, error) {
	return WritePreviewsQC(dir, zeroFilled, recon, std, slices, rows, cols, nil)
}

// WritePreviewsQC is WritePreviews with warnings: a slice whose warning
// (warnings[slice], or warnings[0] for all) is not "" gets a red border and
// a red banner above the panels with the warning in capitals, so a flagged
// reconstruction cannot be mistaken for a trusted one.
func WritePreviewsQC(dir string, zeroFilled, recon, std []float32, slices, rows, cols int, warnings []string) ([]string, error) {
	n := slices * rows * cols
	switch {
	case slices < 1 || rows < 1 || cols < 1 || rows > 65535 || cols > 65535:
		return nil, fmt.Errorf("previews: shape %d×%d×%d", slices, rows, cols)
	case len(zeroFilled) != n || len(recon) != n || (std != nil && len(std) != n):
		return nil, fmt.Errorf("previews: %d, %d and %d values for %d×%d×%d", len(zeroFilled), len(recon), len(std), slices, rows, cols)
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, fmt.Errorf("previews: %w", err)
	}
	glo, ghi := window(recon)
	var slo, shi float64
	if std != nil {
		slo, shi = window(std)
		slo = min(slo, 0)
	}
	lay := newLayout(rows, cols, std != nil)
	var paths []string
	plane := rows * cols
	for s := 0; s < slices; s++ {
		var sd []float32
		if std != nil {
			sd = std[s*plane : (s+1)*plane]
		}
		img := lay.render(zeroFilled[s*plane:(s+1)*plane], recon[s*plane:(s+1)*plane], sd, glo, ghi, slo, shi)
		switch {
		case len(warnings) == 1 && warnings[0] != "":
			img = withBanner(img, warnings[0])
		case len(warnings) > 1 && s < len(warnings) && warnings[s] != "":
			img = withBanner(img, warnings[s])
		}
		var buf bytes.Buffer
		if err := png.Encode(&buf, img); err != nil {
			return paths, fmt.Errorf("previews: encode slice %d: %w", s+1, err)
		}
		p := filepath.Join(dir, fmt.Sprintf("preview_%04d.png", s+1))
		if err := writeFileAtomic(p, buf.Bytes()); err != nil {
			return paths, fmt.Errorf("previews: %w", err)
		}
		paths = append(paths, p)
	}
	return paths, nil
}

// window is (0 or the minimum, 99.5th percentile) of finite values.
func window(v []float32) (lo, hi float64) {
	lo, hi = math.Inf(1), math.Inf(-1)
	for _, x := range v {
		f := float64(x)
		if math.IsNaN(f) || math.IsInf(f, 0) {
			continue
		}
		lo, hi = math.Min(lo, f), math.Max(hi, f)
	}
	if math.IsInf(lo, 0) {
		return 0, 1
	}
	p := percentile(finiteOnly(v), 1, lo, hi, 0.995)
	if lo > 0 {
		lo = 0
	}
	if p <= lo {
		p = hi
	}
	if p <= lo {
		p = lo + 1
	}
	return lo, p
}

func finiteOnly(v []float32) []float32 {
	for _, x := range v {
		if math.IsNaN(float64(x)) || math.IsInf(float64(x), 0) {
			out := make([]float32, 0, len(v))
			for _, y := range v {
				if !math.IsNaN(float64(y)) && !math.IsInf(float64(y), 0) {
					out = append(out, y)
				}
			}
			return out
		}
	}
	return v
}

// layout places three panels, a colour bar and its labels, or only the
// first two panels when there is no uncertainty map.
type layout struct {
	withStd            bool
	rows, cols, k      int
	pw, ph, gap        int
	barX, barW, labelX int
	w, h               int
}

const (
	glyphScale = 2
	labelChars = 8
)

func newLayout(rows, cols int, withStd bool) layout {
	l := layout{withStd: withStd, rows: rows, cols: cols, k: 1, gap: 4, barW: 12}
	if rows < 256 {
		l.k = (256 + rows - 1) / rows
	}
	l.pw, l.ph = cols*l.k, rows*l.k
	l.h = max(l.ph, 7*glyphScale*3)
	if !withStd {
		l.w = 2*l.pw + l.gap
		return l
	}
	l.barX = 3*l.pw + 3*l.gap
	l.labelX = l.barX + l.barW + 3
	l.w = l.labelX + labelChars*4*glyphScale + l.gap
	return l
}

func (l layout) render(zf, rc, sd []float32, glo, ghi, slo, shi float64) *image.RGBA {
	img := image.NewRGBA(image.Rect(0, 0, l.w, l.h))
	draw.Draw(img, img.Bounds(), image.NewUniform(color.RGBA{0, 0, 0, 255}), image.Point{}, draw.Src)
	cmap := colorMap()
	grey := func(v float64) color.RGBA {
		g := uint8(math.Round(255 * clamp01((v-glo)/(ghi-glo))))
		return color.RGBA{g, g, g, 255}
	}
	for y := 0; y < l.ph; y++ {
		for x := 0; x < l.pw; x++ {
			i := (y/l.k)*l.cols + x/l.k
			img.SetRGBA(x, y, grey(float64(zf[i])))
			img.SetRGBA(l.pw+l.gap+x, y, grey(float64(rc[i])))
			if sd == nil {
				continue
			}
			t := clamp01((float64(sd[i]) - slo) / (shi - slo))
			img.SetRGBA(2*(l.pw+l.gap)+x, y, cmap[int(math.Round(t*255))])
		}
	}
	if sd == nil {
		return img
	}
	// Colour bar: top is the window's upper end.
	for y := 0; y < l.ph; y++ {
		t := 1 - float64(y)/float64(max(l.ph-1, 1))
		c := cmap[int(math.Round(t*255))]
		for x := 0; x < l.barW; x++ {
			img.SetRGBA(l.barX+x, y, c)
		}
	}
	white := color.RGBA{255, 255, 255, 255}
	drawText(img, l.labelX, 0, label(shi), white)
	drawText(img, l.labelX, l.ph-5*glyphScale, label(slo), white)
	return img
}

func clamp01(t float64) float64 {
	if math.IsNaN(t) {
		return 0
	}
	return math.Max(0, math.Min(1, t))
}

// label formats v in at most labelChars characters.
func label(v float64) string {
	for prec := 4; prec > 0; prec-- {
		s := strconv.FormatFloat(v, 'g', prec, 64)
		if len(s) <= labelChars {
			return s
		}
	}
	return strconv.FormatFloat(v, 'e', 0, 64)
}

// withBanner frames img in red and puts text (wrapped, in capitals) on a
// red banner above it.
func withBanner(img *image.RGBA, text string) *image.RGBA {
	const border = 3
	red := color.RGBA{200, 0, 0, 255}
	w := img.Bounds().Dx() + 2*border
	perLine := max(1, (w-2*border)/(4*glyphScale))
	var lines []string
	for _, word := range strings.Fields(strings.ToUpper(text)) {
		if k := len(lines) - 1; k >= 0 && len([]rune(lines[k]))+1+len([]rune(word)) <= perLine {
			lines[k] += " " + word
		} else {
			lines = append(lines, word)
		}
	}
	bh := len(lines)*6*glyphScale + 2*glyphScale
	out := image.NewRGBA(image.Rect(0, 0, w, img.Bounds().Dy()+bh+2*border))
	draw.Draw(out, out.Bounds(), image.NewUniform(red), image.Point{}, draw.Src)
	draw.Draw(out, image.Rect(border, bh+border, w-border, out.Bounds().Dy()-border), img, image.Point{}, draw.Src)
	white := color.RGBA{255, 255, 255, 255}
	for i, l := range lines {
		drawText(out, border+glyphScale, glyphScale+i*6*glyphScale, l, white)
	}
	return out
}

// glyphs is a 3×5 bitmap font for numbers and capitals, one row per byte
// (bit 2 = left).
var glyphs = map[rune][5]byte{
	'0': {7, 5, 5, 5, 7}, '1': {2, 6, 2, 2, 7}, '2': {7, 1, 7, 4, 7}, '3': {7, 1, 7, 1, 7},
	'4': {5, 5, 7, 1, 1}, '5': {7, 4, 7, 1, 7}, '6': {7, 4, 7, 5, 7}, '7': {7, 1, 1, 1, 1},
	'8': {7, 5, 7, 5, 7}, '9': {7, 5, 7, 1, 7}, '.': {0, 0, 0, 0, 2}, '-': {0, 0, 7, 0, 0},
	'+': {0, 2, 7, 2, 0}, 'e': {7, 5, 7, 4, 7},
	'A': {2, 5, 7, 5, 5}, 'B': {6, 5, 6, 5, 6}, 'C': {3, 4, 4, 4, 3}, 'D': {6, 5, 5, 5, 6},
	'E': {7, 4, 6, 4, 7}, 'F': {7, 4, 6, 4, 4}, 'G': {3, 4, 5, 5, 3}, 'H': {5, 5, 7, 5, 5},
	'I': {7, 2, 2, 2, 7}, 'J': {1, 1, 1, 5, 2}, 'K': {5, 5, 6, 5, 5}, 'L': {4, 4, 4, 4, 7},
	'M': {5, 7, 7, 5, 5}, 'N': {6, 5, 5, 5, 5}, 'O': {2, 5, 5, 5, 2}, 'P': {6, 5, 6, 4, 4},
	'Q': {2, 5, 5, 6, 3}, 'R': {6, 5, 6, 5, 5}, 'S': {3, 4, 2, 1, 6}, 'T': {7, 2, 2, 2, 2},
	'U': {5, 5, 5, 5, 7}, 'V': {5, 5, 5, 5, 2}, 'W': {5, 5, 7, 7, 5}, 'X': {5, 5, 2, 5, 5},
	'Y': {5, 5, 2, 2, 2}, 'Z': {7, 1, 2, 4, 7}, ':': {0, 2, 0, 2, 0}, ',': {0, 0, 0, 2, 4},
	';': {0, 2, 0, 2, 4}, '(': {1, 2, 2, 2, 1}, ')': {4, 2, 2, 2, 4}, '/': {1, 1, 2, 4, 4},
	'[': {3, 2, 2, 2, 3}, ']': {6, 2, 2, 2, 6},
}

func drawText(img *image.RGBA, x0, y0 int, s string, c color.RGBA) {
	for _, r := range s {
		g := glyphs[r]
		for row := 0; row < 5; row++ {
			for col := 0; col < 3; col++ {
				if g[row]&(4>>col) == 0 {
					continue
				}
				for dy := 0; dy < glyphScale; dy++ {
					for dx := 0; dx < glyphScale; dx++ {
						img.SetRGBA(x0+col*glyphScale+dx, y0+row*glyphScale+dy, c)
					}
				}
			}
		}
		x0 += 4 * glyphScale
	}
}

var (
	cmapOnce sync.Once
	cmapLUT  [256]color.RGBA
)

// colorMap is a 256-entry map whose CIELAB lightness rises linearly from 15
// to 95 while the hue turns from blue-violet through green to yellow:
// equal steps in value look like equal steps in brightness, and it stays
// readable in greyscale. Chroma is reduced where needed to stay in sRGB.
func colorMap() *[256]color.RGBA {
	cmapOnce.Do(func() {
		for i := range cmapLUT {
			t := float64(i) / 255
			L := 15 + 80*t
			h := (300 - 210*t) * math.Pi / 180
			c := 45 + 15*math.Sin(math.Pi*t)
			// Largest chroma up to c that stays inside the gamut.
			lo, hi := 0.0, c
			for it := 0; it < 30; it++ {
				mid := (lo + hi) / 2
				if _, ok := labToSRGB(L, mid*math.Cos(h), mid*math.Sin(h)); ok {
					lo = mid
				} else {
					hi = mid
				}
			}
			rgb, _ := labToSRGB(L, lo*math.Cos(h), lo*math.Sin(h))
			cmapLUT[i] = color.RGBA{rgb[0], rgb[1], rgb[2], 255}
		}
	})
	return &cmapLUT
}

// labToSRGB converts CIELAB (D65 white) to 8-bit sRGB; ok is false when the
// colour lies outside the sRGB gamut.
func labToSRGB(L, a, b float64) ([3]uint8, bool) {
	fy := (L + 16) / 116
	fx, fz := fy+a/500, fy-b/200
	finv := func(t float64) float64 {
		if t > 6.0/29 {
			return t * t * t
		}
		return 3 * (6.0 / 29) * (6.0 / 29) * (t - 4.0/29)
	}
	X, Y, Z := 0.95047*finv(fx), finv(fy), 1.08883*finv(fz)
	lin := [3]float64{
		3.2404542*X - 1.5371385*Y - 0.4985314*Z,
		-0.9692660*X + 1.8760108*Y + 0.0415560*Z,
		0.0556434*X - 0.2040259*Y + 1.0572252*Z,
	}
	var out [3]uint8
	ok := true
	for i, v := range lin {
		if v < -1e-9 || v > 1+1e-9 {
			ok = false
		}
		v = math.Max(0, math.Min(1, v))
		if v <= 0.0031308 {
			v *= 12.92
		} else {
			v = 1.055*math.Pow(v, 1/2.4) - 0.055
		}
		out[i] = uint8(math.Round(255 * v))
	}
	return out, ok
}
