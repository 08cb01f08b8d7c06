package dicomio

import (
	"image"
	"image/color"
	"image/png"
	"math"
	"os"
	"testing"
)

// lightness is CIELAB L* of an 8-bit sRGB colour, computed from the sRGB
// definition (IEC 61966-2-1) independently of the map's construction.
func lightness(c color.RGBA) float64 {
	lin := func(v uint8) float64 {
		x := float64(v) / 255
		if x <= 0.04045 {
			return x / 12.92
		}
		return math.Pow((x+0.055)/1.055, 2.4)
	}
	y := 0.2126*lin(c.R) + 0.7152*lin(c.G) + 0.0722*lin(c.B)
	if y > 216.0/24389 {
		return 116*math.Cbrt(y) - 16
	}
	return 24389.0 / 27 * y
}

// TestColorMapIsPerceptual: lightness rises monotonically and almost
// linearly (so equal steps of std look equal), and the map is coloured.
func TestColorMapIsPerceptual(t *testing.T) {
	cm := colorMap()
	prev := -1.0
	worst := 0.0
	for i, c := range cm {
		L := lightness(c)
		if L <= prev-0.05 {
			t.Fatalf("lightness falls at entry %d: %.2f after %.2f", i, L, prev)
		}
		prev = L
		worst = math.Max(worst, math.Abs(L-(15+80*float64(i)/255)))
	}
	if worst > 1.0 {
		t.Errorf("lightness departs from linear by %.2f L*", worst)
	}
	mid := cm[128]
	if spread := int(max(mid.R, mid.G, mid.B)) - int(min(mid.R, mid.G, mid.B)); spread < 40 {
		t.Errorf("middle of the map is nearly grey: %v", mid)
	}
	if cm[0].B <= cm[0].G || cm[255].R <= cm[255].B {
		t.Errorf("ends are not blue-violet and yellow: %v %v", cm[0], cm[255])
	}
	t.Logf("L* linear within %.2f; ends %v and %v, middle %v", worst, cm[0], cm[255], mid)
}

func TestWritePreviews(t *testing.T) {
	const slices, rows, cols = 2, 32, 40
	mean, std, zf := phantom(slices, rows, cols)
	dir := t.TempDir()
	paths, err := WritePreviews(dir, zf, mean, std, slices, rows, cols)
	if err != nil {
		t.Fatal(err)
	}
	if len(paths) != slices {
		t.Fatalf("%d previews", len(paths))
	}
	glo, ghi := window(mean)
	slo, shi := window(std)
	if slo > 0 {
		slo = 0
	}
	lay := newLayout(rows, cols, true)
	if lay.k != 8 {
		t.Fatalf("32 rows enlarged %d×, want 8×", lay.k)
	}
	for s, p := range paths {
		f, err := os.Open(p)
		if err != nil {
			t.Fatal(err)
		}
		img, err := png.Decode(f)
		f.Close()
		if err != nil {
			t.Fatal(err)
		}
		if b := img.Bounds(); b.Dx() != lay.w || b.Dy() != lay.h {
			t.Fatalf("preview %v, layout %d×%d", b, lay.w, lay.h)
		}
		// Sample pixel (r, c) of each panel at the centre of its enlarged block.
		for _, rc := range [][2]int{{0, 0}, {16, 20}, {31, 39}, {5, 33}} {
			r, c := rc[0], rc[1]
			i := (s*rows+r)*cols + c
			y, x := r*lay.k+lay.k/2, c*lay.k+lay.k/2
			grey := func(v float32) uint8 {
				return uint8(math.Round(255 * math.Max(0, math.Min(1, (float64(v)-glo)/(ghi-glo)))))
			}
			if got := rgbaAt(img, x, y); got.R != grey(zf[i]) || got.G != got.R {
				t.Errorf("slice %d zero-filled (%d,%d): %v, want grey %d", s, r, c, got, grey(zf[i]))
			}
			if got := rgbaAt(img, lay.pw+lay.gap+x, y); got.R != grey(mean[i]) {
				t.Errorf("slice %d recon (%d,%d): %v, want grey %d", s, r, c, got, grey(mean[i]))
			}
			tt := math.Max(0, math.Min(1, (float64(std[i])-slo)/(shi-slo)))
			if got, want := rgbaAt(img, 2*(lay.pw+lay.gap)+x, y), colorMap()[int(math.Round(tt*255))]; got != want {
				t.Errorf("slice %d std (%d,%d): %v, want %v", s, r, c, got, want)
			}
		}
		// Colour bar: top is the map's top, bottom its bottom; labels drawn.
		if rgbaAt(img, lay.barX+2, 0) != colorMap()[255] || rgbaAt(img, lay.barX+2, lay.ph-1) != colorMap()[0] {
			t.Error("colour bar ends do not match the map")
		}
		white := 0
		for y := 0; y < lay.h; y++ {
			for x := lay.labelX; x < lay.w; x++ {
				if rgbaAt(img, x, y) == (color.RGBA{255, 255, 255, 255}) {
					white++
				}
			}
		}
		if rgbaAt(img, lay.pw+1, 0) != (color.RGBA{0, 0, 0, 255}) {
			t.Error("background between panels is not opaque black")
		}
		if white < 20 {
			t.Errorf("colour bar labels missing (%d white pixels)", white)
		}
	}
	if _, err := WritePreviews(dir, zf[:10], mean, std, slices, rows, cols); err == nil {
		t.Error("mismatched lengths accepted")
	}
}

// TestWritePreviewsWithoutStd: classical methods have no uncertainty map and
// get two panels, zero-filled | reconstruction, and no colour bar.
func TestWritePreviewsWithoutStd(t *testing.T) {
	const slices, rows, cols = 1, 32, 40
	mean, _, zf := phantom(slices, rows, cols)
	paths, err := WritePreviews(t.TempDir(), zf, mean, nil, slices, rows, cols)
	if err != nil {
		t.Fatal(err)
	}
	f, err := os.Open(paths[0])
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	img, err := png.Decode(f)
	if err != nil {
		t.Fatal(err)
	}
	lay := newLayout(rows, cols, false)
	if b := img.Bounds(); b.Dx() != 2*lay.pw+lay.gap || b.Dy() != lay.h {
		t.Fatalf("preview %v, want %d×%d", b, 2*lay.pw+lay.gap, lay.h)
	}
	glo, ghi := window(mean)
	i := 16*cols + 20
	want := uint8(math.Round(255 * math.Max(0, math.Min(1, (float64(mean[i])-glo)/(ghi-glo)))))
	if got := rgbaAt(img, lay.pw+lay.gap+20*lay.k+lay.k/2, 16*lay.k+lay.k/2); got.R != want {
		t.Fatalf("recon panel %v, want grey %d", got, want)
	}
}

func rgbaAt(img image.Image, x, y int) color.RGBA {
	return color.RGBAModel.Convert(img.At(x, y)).(color.RGBA)
}

// A warned slice gets a red frame and a banner with its text; the other
// slice keeps the plain layout.
func TestWritePreviewsQCBanner(t *testing.T) {
	const slices, rows, cols = 2, 32, 32
	img := make([]float32, slices*rows*cols)
	for i := range img {
		img[i] = float32(i % 7)
	}
	dir := t.TempDir()
	paths, err := WritePreviewsQC(dir, img, img, nil, slices, rows, cols, []string{"", "QC: motion suspected"})
	if err != nil {
		t.Fatal(err)
	}
	decode := func(p string) image.Image {
		f, err := os.Open(p)
		if err != nil {
			t.Fatal(err)
		}
		defer f.Close()
		im, err := png.Decode(f)
		if err != nil {
			t.Fatal(err)
		}
		return im
	}
	plain, flagged := decode(paths[0]), decode(paths[1])
	if flagged.Bounds().Dy() <= plain.Bounds().Dy() || flagged.Bounds().Dx() <= plain.Bounds().Dx() {
		t.Fatalf("flagged preview %v not larger than plain %v", flagged.Bounds(), plain.Bounds())
	}
	isRed := func(c color.Color) bool {
		r, g, b, _ := c.RGBA()
		return r>>8 == 200 && g == 0 && b == 0
	}
	b := flagged.Bounds()
	for _, p := range []image.Point{{0, 0}, {b.Dx() - 1, b.Dy() - 1}, {0, b.Dy() / 2}, {b.Dx() - 1, b.Dy() / 2}} {
		if !isRed(flagged.At(p.X, p.Y)) {
			t.Errorf("frame not red at %v", p)
		}
	}
	white := 0
	for y := 0; y < 14; y++ {
		for x := 0; x < b.Dx(); x++ {
			if r, g, bb, _ := flagged.At(x, y).RGBA(); r == 0xffff && g == 0xffff && bb == 0xffff {
				white++
			}
		}
	}
	if white < 100 {
		t.Errorf("banner holds %d white text pixels", white)
	}
	if isRed(plain.At(0, 0)) {
		t.Error("unflagged slice framed")
	}
}
