//go:build cuda

package mri

import (
	"fmt"
	"math/cmplx"
	"testing"

	"github.com/kspaced/kspaced/internal/gpu"
	"github.com/kspaced/kspaced/internal/gpu/gputest"
)

// TestDeviceSENSE compares the device operator with SENSE (itself tested
// against BART and a float64 DFT) through both its host and device-pointer
// paths, and checks adjointness directly.
func TestDeviceSENSE(t *testing.T) {
	t.Parallel()
	gputest.Each(t, func(t *testing.T, ctx *gpu.Context) {
		for i, sz := range [][3]int{{3, 8, 6}, {1, 6, 6}, {2, 7, 6}, {4, 9, 5}, {8, 16, 12}} {
			coils, rows, cols := sz[0], sz[1], sz[2]
			t.Run(fmt.Sprintf("%dx%dx%d", coils, rows, cols), func(t *testing.T) {
				rng := testRand(uint64(50 + i))
				n := rows * cols
				maps := randVec(rng, coils*n)
				mask := make([]float32, n)
				for k := range mask {
					if rng.Float64() < 0.5 {
						mask[k] = float32(0.5 + rng.Float64()) // weights, not only 0/1
					}
				}
				ref := NewSENSE(maps, coils, rows, cols, mask)
				dev, err := NewDeviceSENSE(ctx, maps, coils, rows, cols, mask)
				if err != nil {
					t.Fatal(err)
				}
				defer dev.Close()
				x, y := randVec(rng, n), randVec(rng, coils*n)

				want, got := make([]complex64, coils*n), make([]complex64, coils*n)
				ref.Forward(want, x)
				dev.Forward(got, x)
				if d := relDiff(got, want); d > 1e-5 {
					t.Errorf("forward differs from SENSE by %.3g", d)
				}
				wantA, gotA := make([]complex64, n), make([]complex64, n)
				ref.Adjoint(wantA, y)
				dev.Adjoint(gotA, y)
				if d := relDiff(gotA, wantA); d > 1e-5 {
					t.Errorf("adjoint differs from SENSE by %.3g", d)
				}
				wantN, gotN := make([]complex64, n), make([]complex64, n)
				ref.Normal(wantN, x)
				dev.Normal(gotN, x)
				if d := relDiff(gotN, wantN); d > 1e-5 {
					t.Errorf("normal differs from SENSE by %.3g", d)
				}
				// ⟨A x, y⟩ = ⟨x, Aᴴ y⟩ on the device results alone.
				if l, r := dot64(got, y), dot64(x, gotA); cmplx.Abs(l-r) > 1e-4*cmplx.Abs(l) {
					t.Errorf("⟨Ax, y⟩ = %v, ⟨x, Aᴴy⟩ = %v", l, r)
				}
				if err := dev.Err(); err != nil {
					t.Fatal(err)
				}

				// Device-pointer path, out of the operator's own staging.
				dx, _ := ctx.Alloc(8 * n)
				dk, _ := ctx.Alloc(8 * coils * n)
				defer ctx.Free(dx)
				defer ctx.Free(dk)
				gpu.Upload(ctx, dx, x)
				if err := dev.ForwardDevice(dk, dx); err != nil {
					t.Fatal(err)
				}
				if err := dev.AdjointDevice(dx, dk); err != nil {
					t.Fatal(err)
				}
				back, wantBack := make([]complex64, n), make([]complex64, n)
				gpu.Download(ctx, back, dx)
				ref.Adjoint(wantBack, want)
				if d := relDiff(back, wantBack); d > 1e-5 {
					t.Errorf("device-pointer Aᴴ A x differs from SENSE by %.3g", d)
				}
			})
		}
	})
}

func TestDeviceSENSERejectsBadShapes(t *testing.T) {
	t.Parallel()
	ctx := gputest.Emulator(t, false)
	ok, err := NewDeviceSENSE(ctx, make([]complex64, 8), 2, 2, 2, make([]float32, 4))
	if err != nil {
		t.Fatal(err)
	}
	defer ok.Close()
	buf, _ := ctx.Alloc(64)
	defer ctx.Free(buf)
	if err := ok.ForwardDevice(buf.Add(32), buf.Add(4)); err == nil {
		t.Fatal("misaligned complex64 pointer accepted")
	}
	if _, err := NewDeviceSENSE(ctx, make([]complex64, 10), 2, 2, 2, make([]float32, 4)); err == nil {
		t.Fatal("maps of the wrong length accepted")
	}
	if _, err := NewDeviceSENSE(ctx, make([]complex64, 8), 2, 2, 2, make([]float32, 3)); err == nil {
		t.Fatal("mask of the wrong length accepted")
	}
}
