package mri

import (
	"math"
	"math/cmplx"
	"testing"

	"github.com/kspaced/kspaced/fft"
)

type senseCase struct {
	coils, rows, cols int
	maps              []complex64
	mask              []float32
}

func newSenseCase(seed uint64, coils, rows, cols int) senseCase {
	rng := testRand(seed)
	mask := make([]float32, rows*cols)
	for i := range mask {
		if rng.Float64() < 0.4 {
			mask[i] = 1
		}
	}
	return senseCase{coils, rows, cols, randVec(rng, coils*rows*cols), mask}
}

// adjointGap is |⟨Ax, y⟩ − ⟨x, Aᴴy⟩| / (‖Ax‖‖y‖), all in float64.
func adjointGap(op Operator, seed uint64) float64 {
	rng := testRand(seed)
	x, y := randVec(rng, op.InLen()), randVec(rng, op.OutLen())
	ax, ahy := make([]complex64, op.OutLen()), make([]complex64, op.InLen())
	op.Forward(ax, x)
	op.Adjoint(ahy, y)
	return cmplx.Abs(dot64(ax, y)-dot64(x, ahy)) / (norm64(ax) * norm64(y))
}

func TestOperatorsAdjoint(t *testing.T) {
	t.Parallel()
	for _, sz := range [][3]int{{1, 8, 8}, {4, 16, 12}, {3, 9, 7}, {8, 32, 32}} {
		c := newSenseCase(uint64(sz[1]), sz[0], sz[1], sz[2])
		chain, err := NewChain(NewCoilOp(c.maps, c.coils, c.rows, c.cols), NewFFTOp(c.coils, c.rows, c.cols), NewMaskOp(c.mask, c.coils))
		if err != nil {
			t.Fatal(err)
		}
		ops := map[string]Operator{
			"mask":  NewMaskOp(c.mask, c.coils),
			"fft":   NewFFTOp(c.coils, c.rows, c.cols),
			"coil":  NewCoilOp(c.maps, c.coils, c.rows, c.cols),
			"chain": chain,
			"sense": NewSENSE(c.maps, c.coils, c.rows, c.cols, c.mask),
		}
		for name, op := range ops {
			for s := uint64(0); s < 3; s++ {
				if g := adjointGap(op, s); g > 1e-5 {
					t.Errorf("%s %v: adjoint gap %.2g", name, sz, g)
				}
			}
		}
	}
}

func TestSENSEMatchesDefinition(t *testing.T) {
	t.Parallel()
	// Forward against the centred DFT by its definition in float64; Adjoint
	// and Normal against the composition of the unfused building blocks.
	c := newSenseCase(5, 3, 6, 5)
	s := NewSENSE(c.maps, c.coils, c.rows, c.cols, c.mask)
	rng := testRand(6)
	x := randVec(rng, s.InLen())
	got := make([]complex64, s.OutLen())
	s.Forward(got, x)
	n := c.rows * c.cols
	want := make([]complex64, s.OutLen())
	for k := 0; k < c.coils; k++ {
		img := make([]complex128, n)
		for i := range img {
			img[i] = complex128(c.maps[k*n+i]) * complex128(x[i])
		}
		ks := naiveDFT2c(img, c.rows, c.cols, false)
		for i, v := range ks {
			want[k*n+i] = complex64(v * complex(float64(c.mask[i]), 0))
		}
	}
	if d := relDiff(got, want); d > 1e-5 {
		t.Errorf("forward differs from the definition by %.2g", d)
	}
	for i, m := range c.mask {
		for k := 0; k < c.coils; k++ {
			if m == 0 && got[k*n+i] != 0 {
				t.Fatalf("forward is nonzero off the mask")
			}
		}
	}

	c = newSenseCase(7, 5, 24, 20)
	s = NewSENSE(c.maps, c.coils, c.rows, c.cols, c.mask)
	chain, _ := NewChain(NewCoilOp(c.maps, c.coils, c.rows, c.cols), NewFFTOp(c.coils, c.rows, c.cols), NewMaskOp(c.mask, c.coils))
	y := randVec(rng, s.OutLen())
	x = randVec(rng, s.InLen())
	a, b := make([]complex64, s.InLen()), make([]complex64, s.InLen())
	s.Adjoint(a, y)
	chain.Adjoint(b, y)
	if d := relDiff(a, b); d > 1e-6 {
		t.Errorf("adjoint differs from the chain by %.2g", d)
	}
	s.Normal(a, x)
	chain.Normal(b, x)
	if d := relDiff(a, b); d > 1e-6 {
		t.Errorf("normal differs from the chain by %.2g", d)
	}
	k := make([]complex64, s.OutLen())
	s.Forward(k, x)
	s.Adjoint(b, k)
	if d := relDiff(a, b); d > 1e-6 {
		t.Errorf("normal differs from adjoint∘forward by %.2g", d)
	}
	// Repeated calls are bit-identical (fixed-order reduction).
	again := make([]complex64, s.InLen())
	s.Normal(again, x)
	for i := range a {
		if a[i] != again[i] {
			t.Fatalf("normal not deterministic at %d", i)
		}
	}
	// The other building blocks' Normal methods.
	for name, op := range map[string]NormalOperator{
		"mask": NewMaskOp(c.mask, c.coils), "fft": NewFFTOp(c.coils, c.rows, c.cols),
		"coil": NewCoilOp(c.maps, c.coils, c.rows, c.cols),
	} {
		in := randVec(rng, op.InLen())
		mid, n1, n2 := make([]complex64, op.OutLen()), make([]complex64, op.InLen()), make([]complex64, op.InLen())
		op.Forward(mid, in)
		op.Adjoint(n1, mid)
		op.Normal(n2, in)
		if d := relDiff(n2, n1); d > 1e-6 {
			t.Errorf("%s: normal differs from adjoint∘forward by %.2g", name, d)
		}
	}
}

func TestSingleCoilSENSEIsMaskedFFT(t *testing.T) {
	t.Parallel()
	rows, cols := 16, 10
	ones := make([]complex64, rows*cols)
	for i := range ones {
		ones[i] = 1
	}
	c := newSenseCase(9, 1, rows, cols)
	s := NewSENSE(ones, 1, rows, cols, c.mask)
	x := randVec(testRand(10), rows*cols)
	got, want := make([]complex64, rows*cols), make([]complex64, rows*cols)
	s.Forward(got, x)
	fft.Forward(want, x, rows, cols)
	for i, m := range c.mask {
		want[i] *= complex(m, 0)
	}
	if d := relDiff(got, want); d > 1e-7 {
		t.Errorf("single-coil SENSE differs from masked FFT by %.2g", d)
	}
}

func TestOperatorShapes(t *testing.T) {
	t.Parallel()
	c := newSenseCase(1, 2, 8, 8)
	if _, err := NewChain(NewCoilOp(c.maps, 2, 8, 8), NewFFTOp(1, 8, 8)); err == nil {
		t.Error("chain with mismatched lengths: no error")
	}
	if _, err := NewChain(); err == nil {
		t.Error("empty chain: no error")
	}
	if err := CheckSENSE(c.maps, 3, 8, 8, c.mask); err == nil {
		t.Error("CheckSENSE: wrong coil count accepted")
	}
	if err := CheckSENSE(c.maps, 2, 8, 8, c.mask[:10]); err == nil {
		t.Error("CheckSENSE: short mask accepted")
	}
	if err := CheckSENSE(c.maps, 2, 8, 8, c.mask); err != nil {
		t.Error(err)
	}
	scan := &Scan{Coils: 2, Rows: 8, Cols: 8, Mask: c.mask}
	if op, err := scan.SENSE(c.maps); err != nil || op.OutLen() != 128 {
		t.Errorf("Scan.SENSE: %v", err)
	}
	if _, err := scan.SENSE(c.maps[:64]); err == nil {
		t.Error("Scan.SENSE: short maps accepted")
	}
	defer func() {
		if recover() == nil {
			t.Error("Forward with a short dst did not panic")
		}
	}()
	NewSENSE(c.maps, 2, 8, 8, c.mask).Forward(make([]complex64, 3), make([]complex64, 64))
}

func TestSENSEAllocatesOnlyInFFT(t *testing.T) {
	// SENSE must add no allocations of its own; the FFT package's are
	// counted separately so this holds whatever engine is behind it.
	c := newSenseCase(3, 8, 32, 32)
	s := NewSENSE(c.maps, c.coils, c.rows, c.cols, c.mask)
	x, y := randVec(testRand(1), s.InLen()), make([]complex64, s.OutLen())
	z := make([]complex64, s.InLen())
	buf := make([]complex64, c.rows*c.cols)
	perFFT := testing.AllocsPerRun(20, func() { fft.Forward(buf, buf, c.rows, c.cols) })
	for name, f := range map[string]func(){
		"forward": func() { s.Forward(y, x) },
		"adjoint": func() { s.Adjoint(z, y) },
		"normal":  func() { s.Normal(z, x) },
	} {
		f() // start the worker pool
		ffts := float64(c.coils)
		if name == "normal" {
			ffts *= 2
		}
		got := testing.AllocsPerRun(20, f)
		t.Logf("%s: %.1f allocations per call, FFTs %.1f", name, got, ffts*perFFT)
		if got > ffts*perFFT {
			t.Errorf("%s: %.1f allocations per call, the %v FFTs account for %.1f", name, got, ffts, ffts*perFFT)
		}
	}
}

func TestMaxEigen(t *testing.T) {
	t.Parallel()
	// Diagonal operator with known spectrum.
	n := 200
	d := make([]float64, n)
	for i := range d {
		d[i] = float64(i%37) / 10
	}
	d[17] = 7.5
	normal := func(dst, src []complex64) {
		for i := range dst {
			dst[i] = complex(float32(d[i]), 0) * src[i]
		}
	}
	l, err := MaxEigen(t.Context(), normal, n, 200, 1)
	if err != nil || math.Abs(l-7.5)/7.5 > 1e-3 {
		t.Errorf("MaxEigen = %v, %v; want 7.5", l, err)
	}
	// SENSE with Σ|S|² = 1 and a full mask is unitary-like: AᴴA = I.
	c := newSenseCase(2, 4, 16, 16)
	normaliseMaps(c.maps, c.coils, 256)
	for i := range c.mask {
		c.mask[i] = 1
	}
	l, err = MaxEigen(t.Context(), NewSENSE(c.maps, c.coils, 16, 16, c.mask).Normal, 256, 20, 2)
	if err != nil || math.Abs(l-1) > 1e-4 {
		t.Errorf("MaxEigen(SENSE full mask) = %v, %v; want 1", l, err)
	}
}

// normaliseMaps scales maps so Σ_c |S_c|² = 1 at every pixel.
func normaliseMaps(maps []complex64, coils, n int) {
	for i := 0; i < n; i++ {
		var s float64
		for c := 0; c < coils; c++ {
			v := complex128(maps[c*n+i])
			s += real(v)*real(v) + imag(v)*imag(v)
		}
		f := complex(float32(1/math.Sqrt(s)), 0)
		for c := 0; c < coils; c++ {
			maps[c*n+i] *= f
		}
	}
}

func TestSENSEConcurrentOperators(t *testing.T) {
	t.Parallel()
	// Separate operators (sharing maps, mask and the worker pool) may run
	// in parallel goroutines and give the same bits as run alone.
	c := newSenseCase(12, 6, 32, 24)
	x := randVec(testRand(13), 32*24)
	want := make([]complex64, len(x))
	NewSENSE(c.maps, c.coils, c.rows, c.cols, c.mask).Normal(want, x)
	const workers = 4
	got := make([][]complex64, workers)
	done := make(chan int)
	for w := 0; w < workers; w++ {
		go func() {
			s := NewSENSE(c.maps, c.coils, c.rows, c.cols, c.mask)
			got[w] = make([]complex64, len(x))
			for i := 0; i < 20; i++ {
				s.Normal(got[w], x)
			}
			done <- w
		}()
	}
	for range workers {
		<-done
	}
	for w := range got {
		for i := range want {
			if got[w][i] != want[i] {
				t.Fatalf("goroutine %d differs at %d", w, i)
			}
		}
	}
}
