package fft_test

import (
	"fmt"
	"runtime"
	"slices"
	"sync"
	"testing"

	"github.com/kspaced/kspaced/fft"
)

type size struct{ rows, cols, batch int }

// tol bounds the relative error to the float64 reference. The brief asks for
// 1e-5; the engine reaches 1–3e-7 (float32 rounding with float64 twiddles), so
// a tighter bound also catches twiddles or constants rounded too early.
const tol = 1e-6

// Sizes cover every code path: trivial lengths, radix 2/3/4/5, the generic
// odd radix (7, 11, 23, 47), Bluestein (primes above 47 and lengths with such
// a factor), odd and even centring, and the MRI sizes.
var sizes = []size{
	{1, 1, 1}, {1, 7, 2}, {7, 1, 1}, {2, 2, 3}, {8, 8, 1}, {3, 9, 2}, {13, 17, 2},
	{25, 45, 1}, {49, 14, 1}, {11, 121, 1}, {23, 46, 2}, {47, 53, 1}, {31, 64, 2},
	{97, 101, 1}, {1, 1009, 1}, {106, 2, 1}, {320, 320, 1}, {368, 640, 1},
}

func TestAgainstNaive(t *testing.T) {
	t.Parallel()
	for _, sz := range sizes {
		for _, inv := range []bool{false, true} {
			x := random(sz.rows*sz.cols*sz.batch, uint64(sz.rows*1000+sz.cols))
			want := naive2(x, sz.rows, sz.cols, inv)
			got := make([]complex64, len(x))
			if inv {
				fft.Inverse(got, x, sz.rows, sz.cols)
			} else {
				fft.Forward(got, x, sz.rows, sz.cols)
			}
			if e := relErr(got, want); e > tol || e != e {
				t.Errorf("%d×%d×%d inverse=%v: relative error %.3g", sz.batch, sz.rows, sz.cols, inv, e)
			}
		}
	}
}

// Every 1-D length up to 300 (as 1×n and n×1 images) against the naive DFT,
// so each factorisation and radix ordering is exercised.
func TestAllLengths(t *testing.T) {
	t.Parallel()
	for n := 1; n <= 300; n++ {
		x := random(2*n, uint64(n))
		for _, shape := range [][2]int{{1, n}, {n, 1}} {
			want := naive2(x, shape[0], shape[1], false)
			got := make([]complex64, len(x))
			fft.Forward(got, x, shape[0], shape[1])
			if e := relErr(got, want); e > tol || e != e {
				t.Errorf("%d×%d: relative error %.3g", shape[0], shape[1], e)
			}
		}
	}
}

func TestParsevalAndRoundTrip(t *testing.T) {
	t.Parallel()
	for _, sz := range sizes {
		x := random(sz.rows*sz.cols*sz.batch, 7)
		y := make([]complex64, len(x))
		fft.Forward(y, x, sz.rows, sz.cols)
		if nx, ny := norm(x), norm(y); abs(ny-nx) > tol*nx {
			t.Errorf("%v: ‖x‖ = %g, ‖Fx‖ = %g", sz, nx, ny)
		}
		z := make([]complex64, len(x))
		fft.Inverse(z, y, sz.rows, sz.cols)
		if e := relErr(z, widen(x)); e > tol {
			t.Errorf("%v: Inverse(Forward(x)) relative error %.3g", sz, e)
		}
	}
}

// ⟨Fx, y⟩ = ⟨x, Fᴴy⟩ with Fᴴ = Inverse.
func TestAdjoint(t *testing.T) {
	t.Parallel()
	for _, sz := range []size{{13, 17, 1}, {64, 48, 2}, {53, 1, 1}} {
		n := sz.rows * sz.cols * sz.batch
		x, y := random(n, 1), random(n, 2)
		fx, fhy := make([]complex64, n), make([]complex64, n)
		fft.Forward(fx, x, sz.rows, sz.cols)
		fft.Inverse(fhy, y, sz.rows, sz.cols)
		var l, r complex128
		for i := range x {
			l += complex128(fx[i]) * conj(complex128(y[i]))
			r += complex128(x[i]) * conj(complex128(fhy[i]))
		}
		// |⟨Fx,y⟩| ≤ ‖x‖‖y‖, so compare the difference to that scale.
		if d := l - r; abs(real(d))+abs(imag(d)) > tol*norm(x)*norm(y) {
			t.Errorf("%v: ⟨Fx,y⟩ = %v, ⟨x,Fᴴy⟩ = %v", sz, l, r)
		}
	}
}

// dst == src must give bit-for-bit the out-of-place result, and the batched
// call must equal image-by-image calls, whatever the number of threads (which
// changes how images are split into tasks).
func TestAliasingAndBatching(t *testing.T) {
	defer runtime.GOMAXPROCS(runtime.GOMAXPROCS(0))
	for _, procs := range []int{1, 2, 3, 5} {
		runtime.GOMAXPROCS(procs)
		for _, sz := range []size{{64, 64, 5}, {320, 320, 2}, {97, 101, 3}, {368, 640, 1}, {7, 1, 16}} {
			n := sz.rows * sz.cols
			x := random(n*sz.batch, 3)
			for _, inv := range []bool{false, true} {
				f := fft.Forward
				if inv {
					f = fft.Inverse
				}
				out := make([]complex64, len(x))
				f(out, x, sz.rows, sz.cols)
				in := slices.Clone(x)
				f(in, in, sz.rows, sz.cols)
				if !slices.Equal(in, out) {
					t.Errorf("procs=%d %v inverse=%v: in-place result differs", procs, sz, inv)
				}
				for b := 0; b < sz.batch; b++ {
					one := make([]complex64, n)
					f(one, x[b*n:(b+1)*n], sz.rows, sz.cols)
					if !slices.Equal(one, out[b*n:(b+1)*n]) {
						t.Errorf("procs=%d %v inverse=%v: image %d differs from batched", procs, sz, inv, b)
					}
				}
				if !slices.Equal(x, random(n*sz.batch, 3)) {
					t.Fatalf("procs=%d %v: source modified", procs, sz)
				}
			}
		}
	}
}

// Concurrent callers with different sizes share the helpers and plan cache.
func TestConcurrentCallers(t *testing.T) {
	t.Parallel()
	szs := []size{{64, 64, 3}, {97, 101, 1}, {40, 30, 7}, {128, 96, 2}}
	want := make([][]complex64, len(szs))
	for i, sz := range szs {
		x := random(sz.rows*sz.cols*sz.batch, uint64(i))
		want[i] = make([]complex64, len(x))
		fft.Forward(want[i], x, sz.rows, sz.cols)
	}
	var wg sync.WaitGroup
	errs := make(chan error, 64)
	for g := 0; g < 8; g++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for rep := 0; rep < 5; rep++ {
				i := (g + rep) % len(szs)
				sz := szs[i]
				x := random(sz.rows*sz.cols*sz.batch, uint64(i))
				got := make([]complex64, len(x))
				fft.Forward(got, x, sz.rows, sz.cols)
				if !slices.Equal(got, want[i]) {
					errs <- fmt.Errorf("goroutine %d: %v differs", g, sz)
					return
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
}

func TestNoAllocations(t *testing.T) {
	for _, sz := range []size{{64, 64, 4}, {97, 101, 3}, {320, 320, 1}} {
		p, err := fft.NewPlan(sz.rows, sz.cols)
		if err != nil {
			t.Fatal(err)
		}
		x := random(sz.rows*sz.cols*sz.batch, 1)
		y := make([]complex64, len(x))
		p.Forward(y, x) // warm plans, helpers and scratch
		p.Inverse(y, x)
		if a := testing.AllocsPerRun(20, func() { p.Forward(y, x); p.Inverse(x, y) }); a > 0 {
			t.Errorf("%v: %.1f allocations per call", sz, a)
		}
	}
}

func TestBadShapes(t *testing.T) {
	t.Parallel()
	for _, rc := range [][2]int{{0, 4}, {4, 0}, {-1, 3}, {fft.MaxLen + 1, 2}, {1, 1 << 40}} {
		if _, err := fft.NewPlan(rc[0], rc[1]); err == nil {
			t.Errorf("NewPlan(%d, %d): no error", rc[0], rc[1])
		}
	}
	mustPanic := func(name string, f func()) {
		t.Helper()
		defer func() {
			if recover() == nil {
				t.Errorf("%s: no panic", name)
			}
		}()
		f()
	}
	x := make([]complex64, 12)
	mustPanic("length not a multiple", func() { fft.Forward(x[:10], x[:10], 2, 3) })
	mustPanic("dst shorter", func() { fft.Forward(x[:6], x, 2, 3) })
	mustPanic("partial overlap", func() { fft.Forward(x[:6], x[1:7], 2, 3) })
	fft.Forward(x[:0], x[:0], 2, 3) // empty batch is fine
}

func abs(v float64) float64 {
	if v < 0 {
		return -v
	}
	return v
}

func conj(v complex128) complex128 { return complex(real(v), -imag(v)) }

// The portable kernels (used without AVX2/FMA, on other architectures, or
// with -tags purego) against the naive DFT and against the assembly ones.
func TestPortableKernels(t *testing.T) {
	if !fft.HasAsm() {
		t.Skip("no assembly kernels in this build: the other tests already cover the portable ones")
	}
	defer fft.SetAsm(fft.SetAsm(false))
	for _, sz := range append(sizes[:len(sizes)-2:len(sizes)-2], size{2, 300, 1}, size{29, 31, 2}) {
		for _, inv := range []bool{false, true} {
			x := random(sz.rows*sz.cols*sz.batch, 5)
			want := naive2(x, sz.rows, sz.cols, inv)
			got := make([]complex64, len(x))
			fft.SetAsm(false)
			if inv {
				fft.Inverse(got, x, sz.rows, sz.cols)
			} else {
				fft.Forward(got, x, sz.rows, sz.cols)
			}
			if e := relErr(got, want); e > tol || e != e {
				t.Errorf("portable %d×%d×%d inverse=%v: relative error %.3g", sz.batch, sz.rows, sz.cols, inv, e)
			}
			fft.SetAsm(true)
			asm := make([]complex64, len(x))
			if inv {
				fft.Inverse(asm, x, sz.rows, sz.cols)
			} else {
				fft.Forward(asm, x, sz.rows, sz.cols)
			}
			if e := relErr(asm, widen(got)); e > 2e-6 {
				t.Errorf("%d×%d×%d inverse=%v: assembly and portable kernels differ by %.3g", sz.batch, sz.rows, sz.cols, inv, e)
			}
		}
	}
}
