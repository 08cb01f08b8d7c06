//go:build cuda

package gpu_test

import (
	"math"
	"math/cmplx"
	"math/rand/v2"
	"strings"
	"testing"

	"github.com/kspaced/kspaced/internal/gpu"
	"github.com/kspaced/kspaced/internal/gpu/gputest"
)

const testSrc = `
#define BLOCK 256
extern "C" __global__ void k_scale(float* y, const float* x, float a, long long n) {
	for (long long i = blockIdx.x * (long long)blockDim.x + threadIdx.x; i < n; i += (long long)gridDim.x * blockDim.x)
		y[i] = a * x[i];
}
extern "C" __global__ void k_blocksum(double* out, const float* x, long long n) {
	__shared__ double s[BLOCK];
	double acc = 0;
	for (long long i = blockIdx.x * (long long)blockDim.x + threadIdx.x; i < n; i += (long long)gridDim.x * blockDim.x)
		acc += x[i];
	int t = threadIdx.x;
	s[t] = acc;
	__syncthreads();
	for (int h = BLOCK / 2; h > 0; h >>= 1) {
		if (t < h) s[t] += s[t + h];
		__syncthreads();
	}
	if (t == 0) out[blockIdx.x] = s[0];
}
extern "C" __global__ void k_racy(float* out) {
	__shared__ float s[BLOCK];
	s[threadIdx.x] = (float)threadIdx.x;
	out[threadIdx.x] = s[(threadIdx.x + 1) % BLOCK]; // no barrier: a data race
}
extern "C" __global__ void k_divergent(float* out) {
	if (threadIdx.x < 3) return;
	__syncthreads();
	out[threadIdx.x] = 1.0f;
}
extern "C" __global__ void k_where(int* out, int w) {
	int x = blockIdx.x * blockDim.x + threadIdx.x, y = blockIdx.y * blockDim.y + threadIdx.y;
	out[y * w + x] = 1000 * (int)blockIdx.y + 100 * (int)blockIdx.x + 10 * (int)threadIdx.y + (int)threadIdx.x;
}
`

func randF32(r *rand.Rand, n int) []float32 {
	v := make([]float32, n)
	for i := range v {
		v[i] = float32(r.NormFloat64())
	}
	return v
}

func upload[T gpu.Elem](t *testing.T, c *gpu.Context, v []T) gpu.Ptr {
	t.Helper()
	var z T
	p, err := c.Alloc(len(v) * int(sizeOf(z)))
	if err != nil {
		t.Fatal(err)
	}
	if err := gpu.Upload(c, p, v); err != nil {
		t.Fatal(err)
	}
	return p
}

func sizeOf(v any) int {
	switch v.(type) {
	case float32, int32:
		return 4
	case complex64, float64:
		return 8
	}
	panic("size")
}

func TestKernels(t *testing.T) {
	gputest.Each(t, func(t *testing.T, c *gpu.Context) {
		m, err := c.Compile("test", testSrc)
		if err != nil {
			t.Fatal(err)
		}
		r := rand.New(rand.NewPCG(1, 2))
		n := 3000
		x := randF32(r, n)
		dx := upload(t, c, x)
		dy, _ := c.Alloc(4 * n)
		if err := m.Kernel("k_scale").Launch(gpu.D1(3), gpu.D1(gpu.Block), 0, gpu.P(dy), gpu.P(dx), gpu.F(-2), gpu.L(n)); err != nil {
			t.Fatal(err)
		}
		y := make([]float32, n)
		if err := gpu.Download(c, y, dy); err != nil {
			t.Fatal(err)
		}
		for i := range y {
			if y[i] != -2*x[i] {
				t.Fatalf("k_scale: y[%d] = %g, want %g", i, y[i], -2*x[i])
			}
		}
		if err := m.Kernel("k_scale").Launch(gpu.D1(1), gpu.D1(gpu.Block), 0, gpu.P(dy), gpu.P(dx), gpu.F(-2), gpu.I(n)); err == nil {
			t.Fatal("launch with an int for a long long parameter accepted")
		}

		blocks := 5
		parts, _ := c.Alloc(8 * blocks)
		if err := m.Kernel("k_blocksum").Launch(gpu.D1(blocks), gpu.D1(gpu.Block), 0, gpu.P(parts), gpu.P(dx), gpu.L(n)); err != nil {
			t.Fatal(err)
		}
		ps := make([]float64, blocks)
		if err := gpu.Download(c, ps, parts); err != nil {
			t.Fatal(err)
		}
		var got, want float64
		for _, p := range ps {
			got += p
		}
		for _, v := range x {
			want += float64(v)
		}
		if math.Abs(got-want) > 1e-9*float64(n) {
			t.Fatalf("k_blocksum: %g, want %g", got, want)
		}

		w, h := 8, 6
		where, _ := c.Alloc(4 * w * h)
		if err := m.Kernel("k_where").Launch(gpu.Dim3{X: 2, Y: 3, Z: 1}, gpu.Dim3{X: 4, Y: 2, Z: 1}, 0, gpu.P(where), gpu.I(w)); err != nil {
			t.Fatal(err)
		}
		wv := make([]int32, w*h)
		gpu.Download(c, wv, where)
		for yy := 0; yy < h; yy++ {
			for xx := 0; xx < w; xx++ {
				want := int32(1000*(yy/2) + 100*(xx/4) + 10*(yy%2) + xx%4)
				if wv[yy*w+xx] != want {
					t.Fatalf("k_where[%d][%d] = %d, want %d", yy, xx, wv[yy*w+xx], want)
				}
			}
		}
		for _, p := range []gpu.Ptr{dx, dy, parts, where} {
			if err := c.Free(p); err != nil {
				t.Fatal(err)
			}
		}
	})
}

// TestEmulatorFindsRacesAndBadBarriers checks the emulator's two checks:
// a missing barrier changes results between thread orders, and a barrier
// not reached by every thread of a block is an error.
func TestEmulatorFindsRacesAndBadBarriers(t *testing.T) {
	out := [2][]float32{}
	for i, rev := range []bool{false, true} {
		c := gputest.Emulator(t, rev)
		m, err := c.Compile("test", testSrc)
		if err != nil {
			t.Fatal(err)
		}
		d, _ := c.Alloc(4 * gpu.Block)
		if err := m.Kernel("k_racy").Launch(gpu.D1(1), gpu.D1(gpu.Block), 0, gpu.P(d)); err != nil {
			t.Fatal(err)
		}
		out[i] = make([]float32, gpu.Block)
		gpu.Download(c, out[i], d)
		err = m.Kernel("k_divergent").Launch(gpu.D1(1), gpu.D1(gpu.Block), 0, gpu.P(d))
		if err == nil || !strings.Contains(err.Error(), "__syncthreads") {
			t.Fatalf("divergent barrier: err %v", err)
		}
	}
	same := true
	for i := range out[0] {
		same = same && out[0][i] == out[1][i]
	}
	if same {
		t.Fatal("the racy kernel gave the same result in both thread orders")
	}
}

// naiveGemm is row-major C = alpha·op(A)·op(B) + beta·C in float64.
func naiveGemm(ta, tb bool, m, n, k int, alpha float64, a []float32, lda int, b []float32, ldb int, beta float64, c []float32, ldc int) []float64 {
	out := make([]float64, len(c))
	for i := range c {
		out[i] = float64(c[i])
	}
	for i := 0; i < m; i++ {
		for j := 0; j < n; j++ {
			var s float64
			for l := 0; l < k; l++ {
				var av, bv float32
				if ta {
					av = a[l*lda+i]
				} else {
					av = a[i*lda+l]
				}
				if tb {
					bv = b[j*ldb+l]
				} else {
					bv = b[l*ldb+j]
				}
				s += float64(av) * float64(bv)
			}
			out[i*ldc+j] = alpha*s + beta*float64(c[i*ldc+j])
		}
	}
	return out
}

func TestGemm(t *testing.T) {
	gputest.Each(t, func(t *testing.T, c *gpu.Context) {
		r := rand.New(rand.NewPCG(3, 4))
		for _, tf32 := range []bool{false, true} {
			bl, err := c.NewBLAS(tf32)
			if err != nil {
				t.Fatal(err)
			}
			defer bl.Close()
			tol := 1e-5
			if tf32 {
				tol = 2e-3 // inputs rounded to 11 significant bits
			}
			for _, ta := range []bool{false, true} {
				for _, tb := range []bool{false, true} {
					m, n, k := 13, 17, 33
					// Padded leading dimensions catch a swapped ld.
					lda, ldb, ldc := k+3, n+2, n+5
					if ta {
						lda = m + 1
					}
					if tb {
						ldb = k + 4
					}
					ra, rb := m, k
					if ta {
						ra = k
					}
					if tb {
						rb = n
					}
					a, b, cc := randF32(r, ra*lda), randF32(r, rb*ldb), randF32(r, m*ldc)
					want := naiveGemm(ta, tb, m, n, k, 0.7, a, lda, b, ldb, 0.3, cc, ldc)
					da, db, dc := upload(t, c, a), upload(t, c, b), upload(t, c, cc)
					if err := bl.Gemm(ta, tb, m, n, k, 0.7, da, lda, db, ldb, 0.3, dc, ldc); err != nil {
						t.Fatal(err)
					}
					got := make([]float32, len(cc))
					gpu.Download(c, got, dc)
					for i := range got {
						if i%ldc >= n { // padding must be untouched
							if got[i] != cc[i] {
								t.Fatalf("tf32 %v ta %v tb %v: padding %d changed", tf32, ta, tb, i)
							}
							continue
						}
						if d := math.Abs(float64(got[i]) - want[i]); d > tol*math.Sqrt(float64(k)) {
							t.Fatalf("tf32 %v ta %v tb %v: C[%d] = %g, want %g", tf32, ta, tb, i, got[i], want[i])
						}
					}
				}
			}
			// Batched with a shared (stride 0) left operand.
			m, n, k, batch := 5, 7, 6, 3
			a, b, cc := randF32(r, m*k), randF32(r, batch*k*n), randF32(r, batch*m*n)
			da, db, dc := upload(t, c, a), upload(t, c, b), upload(t, c, cc)
			if err := bl.GemmStridedBatched(false, false, m, n, k, 1, da, k, 0, db, n, k*n, 0, dc, n, m*n, batch); err != nil {
				t.Fatal(err)
			}
			got := make([]float32, len(cc))
			gpu.Download(c, got, dc)
			for i := 0; i < batch; i++ {
				want := naiveGemm(false, false, m, n, k, 1, a, k, b[i*k*n:], n, 0, cc[i*m*n:(i+1)*m*n], n)
				for j, w := range want {
					if d := math.Abs(float64(got[i*m*n+j]) - w); d > tol*3 {
						t.Fatalf("batched tf32 %v: image %d value %d = %g, want %g", tf32, i, j, got[i*m*n+j], w)
					}
				}
			}
		}
	})
}

func TestFFT(t *testing.T) {
	gputest.Each(t, func(t *testing.T, c *gpu.Context) {
		r := rand.New(rand.NewPCG(5, 6))
		for _, sz := range [][2]int{{8, 6}, {5, 7}} {
			rows, cols, batch := sz[0], sz[1], 3
			x := make([]complex64, batch*rows*cols)
			for i := range x {
				x[i] = complex(float32(r.NormFloat64()), float32(r.NormFloat64()))
			}
			plan, err := c.NewFFT(rows, cols, batch)
			if err != nil {
				t.Fatal(err)
			}
			for _, inv := range []bool{false, true} {
				d := upload(t, c, x)
				if err := plan.Exec(d, inv); err != nil {
					t.Fatal(err)
				}
				got := make([]complex64, len(x))
				gpu.Download(c, got, d)
				sign := -1.0
				if inv {
					sign = 1
				}
				for b := 0; b < batch; b++ {
					for k1 := 0; k1 < rows; k1++ {
						for k2 := 0; k2 < cols; k2++ {
							var s complex128
							for n1 := 0; n1 < rows; n1++ {
								for n2 := 0; n2 < cols; n2++ {
									ph := sign * 2 * math.Pi * (float64(k1*n1)/float64(rows) + float64(k2*n2)/float64(cols))
									s += complex128(x[(b*rows+n1)*cols+n2]) * cmplx.Exp(complex(0, ph))
								}
							}
							if g := complex128(got[(b*rows+k1)*cols+k2]); cmplx.Abs(g-s) > 1e-4*math.Sqrt(float64(rows*cols)) {
								t.Fatalf("%d×%d inverse %v: X[%d][%d][%d] = %v, want %v", rows, cols, inv, b, k1, k2, g, s)
							}
						}
					}
				}
				c.Free(d)
			}
			plan.Close()
		}
	})
}
