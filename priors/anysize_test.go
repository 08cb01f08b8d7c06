package priors

import (
	"math"
	"testing"
)

// anySizeNet is a very narrow network with the real one's structure (two
// levels, unshuffle 2: stride 4), so the big matrices stay cheap.
func anySizeNet(attention bool) UNetConfig {
	c := UNetConfig{Channels: 2, Rows: 32, Cols: 32, Widths: []int{4, 8}, Blocks: 1,
		EmbedDim: 8, EmbedMaxPeriod: 1000, Unshuffle: 2, Groups: 2, Heads: 1}
	if attention {
		c.Attention = []int{1}
	}
	return c
}

// TestUNetAnySizeShapes applies one set of weights to the matrices the
// issue names: the output has the input's shape and is finite.
func TestUNetAnySizeShapes(t *testing.T) {
	u, err := NewUNet(anySizeNet(false), 3)
	if err != nil {
		t.Fatal(err)
	}
	for _, sz := range [][2]int{{128, 128}, {192, 192}, {256, 208}, {320, 320}, {368, 640}, {37, 50}} {
		d, err := u.AtSize(sz[0], sz[1])
		if err != nil {
			t.Fatalf("%v: %v", sz, err)
		}
		if c, h, w := d.Shape(); c != 2 || h != sz[0] || w != sz[1] {
			t.Fatalf("%v: shape %d×%d×%d", sz, c, h, w)
		}
		n := 2 * sz[0] * sz[1]
		x := randomInput(n, uint64(sz[0]))
		out := make([]float32, n)
		if err := d.Denoise(out, x, []float32{0.5}); err != nil {
			t.Fatalf("%v: %v", sz, err)
		}
		for i, v := range out {
			if math.IsNaN(float64(v)) || math.IsInf(float64(v), 0) {
				t.Fatalf("%v: output %d is %v", sz, i, v)
			}
		}
		if err := d.Denoise(make([]float32, n-1), x, []float32{0.5}); err == nil {
			t.Fatalf("%v: short dst accepted", sz)
		}
	}
	if len(u.views) > maxViews {
		t.Fatalf("%d cached views, bound %d", len(u.views), maxViews)
	}
	// A stride multiple runs the network itself, no padding.
	if d, _ := u.AtSize(64, 48); func() bool { _, ok := d.(*UNet); return !ok }() {
		t.Fatal("64×48 is padded")
	}
}

// naiveReflect is an independent reference for reflect padding: fold the
// index back into range one mirror at a time.
func naiveReflect(i, n int) int {
	for i < 0 || i >= n {
		if n == 1 {
			return 0
		}
		if i >= n {
			i = 2*(n-1) - i
		} else {
			i = -i
		}
	}
	return i
}

// TestPaddedDenoiserMatchesReference: the padded view equals the network
// run at the padded size on a naively reflect-padded image and cropped; and
// its VJP is the transpose of its Jacobian (finite differences).
func TestPaddedDenoiserMatchesReference(t *testing.T) {
	u, err := NewUNet(anySizeNet(true), 5)
	if err != nil {
		t.Fatal(err)
	}
	const h, w, ph, pw = 13, 22, 16, 24
	d, err := u.AtSize(h, w)
	if err != nil {
		t.Fatal(err)
	}
	full, err := u.AtSize(ph, pw)
	if err != nil {
		t.Fatal(err)
	}
	n, pn := 2*h*w, 2*ph*pw
	x := randomInput(2*n, 11)
	sig := []float32{0.3, 2}
	got := make([]float32, 2*n)
	if err := d.Denoise(got, x, sig); err != nil {
		t.Fatal(err)
	}
	xp := make([]float32, 2*pn)
	for p := 0; p < 4; p++ {
		for r := 0; r < ph; r++ {
			for c := 0; c < pw; c++ {
				xp[(p*ph+r)*pw+c] = x[(p*h+naiveReflect(r, h))*w+naiveReflect(c, w)]
			}
		}
	}
	ref := make([]float32, 2*pn)
	if err := full.Denoise(ref, xp, sig); err != nil {
		t.Fatal(err)
	}
	for p := 0; p < 4; p++ {
		for r := 0; r < h; r++ {
			for c := 0; c < w; c++ {
				if a, b := got[(p*h+r)*w+c], ref[(p*ph+r)*pw+c]; a != b {
					t.Fatalf("plane %d (%d,%d): %v, reference %v", p, r, c, a, b)
				}
			}
		}
	}
	// ⟨v, J e⟩ by central differences against ⟨Jᵀv, e⟩ from the VJP.
	v, e := randomInput(2*n, 12), randomInput(2*n, 13)
	vjp, err := d.DenoiseVJP(got, x, sig)
	if err != nil {
		t.Fatal(err)
	}
	jtv := make([]float32, 2*n)
	if err := vjp(jtv, v); err != nil {
		t.Fatal(err)
	}
	var lhs float64
	for i := range e {
		lhs += float64(jtv[i]) * float64(e[i])
	}
	const eps = 1e-2
	xa, xb := make([]float32, 2*n), make([]float32, 2*n)
	for i := range x {
		xa[i], xb[i] = x[i]+eps*e[i], x[i]-eps*e[i]
	}
	da, db := make([]float32, 2*n), make([]float32, 2*n)
	if err := d.Denoise(da, xa, sig); err != nil {
		t.Fatal(err)
	}
	if err := d.Denoise(db, xb, sig); err != nil {
		t.Fatal(err)
	}
	var rhs float64
	for i := range v {
		rhs += float64(v[i]) * float64(da[i]-db[i]) / (2 * eps)
	}
	if math.Abs(lhs-rhs) > 2e-3*math.Max(1, math.Abs(rhs)) {
		t.Fatalf("⟨Jᵀv, e⟩ = %.6f, finite differences %.6f", lhs, rhs)
	}
	// The pad's adjoint on its own: ⟨P a, b⟩ = ⟨a, Pᵀ b⟩ exactly (float64 sums).
	a, b := randomInput(n, 14), randomInput(pn, 15)
	pa, ptb := make([]float32, pn), make([]float32, n)
	reflectPad(pa, a, 2, h, w, ph, pw)
	reflectPadAdjoint(ptb, b, 2, h, w, ph, pw)
	var s1, s2 float64
	for i := range pa {
		s1 += float64(pa[i]) * float64(b[i])
	}
	for i := range a {
		s2 += float64(a[i]) * float64(ptb[i])
	}
	if math.Abs(s1-s2) > 1e-4*math.Abs(s1) {
		t.Fatalf("⟨Pa,b⟩ %v, ⟨a,Pᵀb⟩ %v", s1, s2)
	}
}

// TestUNetTranslationEquivariance: a network without attention shifted
// content by a multiple of its stride gives the same output, shifted, away
// from the image borders (convolutions, pooling and upsampling commute with
// such shifts; group-norm statistics barely change with a border of
// background). A shift by a non-multiple need not, and is not tested.
func TestUNetTranslationEquivariance(t *testing.T) {
	u, err := NewUNet(anySizeNet(false), 9)
	if err != nil {
		t.Fatal(err)
	}
	const size, s = 64, 4 // stride 4
	d, err := u.AtSize(size, size)
	if err != nil {
		t.Fatal(err)
	}
	patch := randomInput(2*16*16, 21)
	place := func(off int) []float32 {
		x := make([]float32, 2*size*size)
		for c := 0; c < 2; c++ {
			for r := 0; r < 16; r++ {
				for q := 0; q < 16; q++ {
					x[(c*size+r+off)*size+q+off] = patch[(c*16+r)*16+q]
				}
			}
		}
		return x
	}
	a, b := make([]float32, 2*size*size), make([]float32, 2*size*size)
	if err := d.Denoise(a, place(20), []float32{0.1}); err != nil {
		t.Fatal(err)
	}
	if err := d.Denoise(b, place(20+s), []float32{0.1}); err != nil {
		t.Fatal(err)
	}
	var diff, norm float64
	for c := 0; c < 2; c++ {
		for r := 14; r < 42; r++ {
			for q := 14; q < 42; q++ {
				x, y := float64(a[(c*size+r)*size+q]), float64(b[(c*size+r+s)*size+q+s])
				diff += (x - y) * (x - y)
				norm += x * x
			}
		}
	}
	if rel := math.Sqrt(diff / norm); rel > 0.02 {
		t.Fatalf("shifted output differs by %.3g (relative)", rel)
	}
}
