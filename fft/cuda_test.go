//go:build cuda

package fft

import (
	"fmt"
	"math"
	"math/cmplx"
	"math/rand/v2"
	"testing"

	"github.com/kspaced/kspaced/internal/gpu"
	"github.com/kspaced/kspaced/internal/gpu/gputest"
)

// naiveDFT2 is the unnormalised, unshifted 2-D DFT in float64.
func naiveDFT2(x []complex128, rows, cols int, sign float64) []complex128 {
	out := make([]complex128, len(x))
	for k1 := 0; k1 < rows; k1++ {
		for k2 := 0; k2 < cols; k2++ {
			var s complex128
			for n1 := 0; n1 < rows; n1++ {
				for n2 := 0; n2 < cols; n2++ {
					ph := sign * 2 * math.Pi * (float64(k1*n1%rows)/float64(rows) + float64(k2*n2%cols)/float64(cols))
					s += x[n1*cols+n2] * cmplx.Exp(complex(0, ph))
				}
			}
			out[k1*cols+k2] = s
		}
	}
	return out
}

// TestCentringForMatchesCPU applies CentringFor's recipe around a plain
// float64 DFT and compares with the CPU package's centred transform: the
// plan-selection maths checked without any GPU code.
func TestCentringForMatchesCPU(t *testing.T) {
	t.Parallel()
	r := rand.New(rand.NewPCG(8, 9))
	for _, sz := range [][2]int{{4, 6}, {6, 6}, {2, 8}, {8, 4}, {5, 6}, {6, 5}, {7, 9}, {1, 4}} {
		rows, cols := sz[0], sz[1]
		n := rows * cols
		x := make([]complex64, n)
		for i := range x {
			x[i] = complex(float32(r.NormFloat64()), float32(r.NormFloat64()))
		}
		for _, inv := range []bool{false, true} {
			want := make([]complex64, n)
			sign := -1.0
			if inv {
				Inverse(want, x, rows, cols)
				sign = 1
			} else {
				Forward(want, x, rows, cols)
			}
			c := CentringFor(rows, cols)
			in := make([]complex128, n)
			for q := range in {
				rr, cc := q/cols, q%cols
				if c.Checker {
					in[q] = complex128(x[q])
					if (rr+cc)%2 == 1 {
						in[q] = -in[q]
					}
				} else {
					in[q] = complex128(x[(rr+c.PreR)%rows*cols+(cc+c.PreC)%cols])
				}
			}
			mid := naiveDFT2(in, rows, cols, sign)
			for q := range want {
				rr, cc := q/cols, q%cols
				var got complex128
				if c.Checker {
					f := float64(c.Sign * c.Scale)
					if (rr+cc)%2 == 1 {
						f = -f
					}
					got = complex(f, 0) * mid[q]
				} else {
					got = complex(float64(c.Scale), 0) * mid[(rr+c.PostR)%rows*cols+(cc+c.PostC)%cols]
				}
				if cmplx.Abs(got-complex128(want[q])) > 1e-5 {
					t.Fatalf("%d×%d inverse %v checker %v: [%d] = %v, CPU %v", rows, cols, inv, c.Checker, q, got, want[q])
				}
			}
		}
	}
}

// TestDevicePlan compares the device transform with the CPU one for even,
// mixed and odd sizes, in and out of place, both directions.
func TestDevicePlan(t *testing.T) {
	t.Parallel()
	gputest.Each(t, func(t *testing.T, ctx *gpu.Context) {
		r := rand.New(rand.NewPCG(10, 11))
		for _, sz := range [][3]int{{8, 6, 3}, {6, 7, 2}, {9, 5, 2}, {16, 16, 1}} {
			rows, cols, batch := sz[0], sz[1], sz[2]
			t.Run(fmt.Sprintf("%dx%dx%d", rows, cols, batch), func(t *testing.T) {
				p, err := NewDevicePlan(ctx, rows, cols, batch)
				if err != nil {
					t.Fatal(err)
				}
				defer p.Close()
				x := make([]complex64, p.Len())
				for i := range x {
					x[i] = complex(float32(r.NormFloat64()), float32(r.NormFloat64()))
				}
				src, _ := ctx.Alloc(8 * len(x))
				dst, _ := ctx.Alloc(8 * len(x))
				defer ctx.Free(src)
				defer ctx.Free(dst)
				for _, inv := range []bool{false, true} {
					for _, inPlace := range []bool{false, true} {
						want := make([]complex64, len(x))
						run, cpu := p.Forward, Forward
						if inv {
							run, cpu = p.Inverse, Inverse
						}
						cpu(want, x, rows, cols)
						if err := gpu.Upload(ctx, src, x); err != nil {
							t.Fatal(err)
						}
						out := dst
						if inPlace {
							out = src
						}
						if err := run(out, src); err != nil {
							t.Fatal(err)
						}
						got := make([]complex64, len(x))
						if err := gpu.Download(ctx, got, out); err != nil {
							t.Fatal(err)
						}
						for i := range got {
							if cmplx.Abs(complex128(got[i]-want[i])) > 2e-5 {
								t.Fatalf("inverse %v in place %v: [%d] = %v, CPU %v", inv, inPlace, i, got[i], want[i])
							}
						}
					}
				}
			})
		}
	})
}
