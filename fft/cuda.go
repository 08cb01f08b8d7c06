//go:build cuda

package fft

import (
	"errors"
	"fmt"
	"math"

	"github.com/kspaced/kspaced/internal/gpu"
)

func init() { gpu.RegisterSource("fft", cudaSource) }

// Centring says how a DevicePlan turns cuFFT's raw transform (unshifted,
// unnormalised) into the centred orthonormal one, so that operators built
// on the raw transform (mri.DeviceSENSE) can fold the same steps into their
// own elementwise passes.
//
// When rows and cols are both even the shifts are a modulation: with
// C = (−1)^(r+c) elementwise, fftshift∘F∘ifftshift = σ·C·F·C where
// σ = (−1)^(rows/2+cols/2), and the same holds for the inverse. Otherwise
// the data is permuted: before the raw transform element (r, c) is read
// from ((r+PreR) mod rows, (c+PreC) mod cols) (ifftshift), after it from
// ((r+PostR) mod rows, (c+PostC) mod cols) (fftshift).
type Centring struct {
	Checker                  bool
	Sign                     float32 // σ when Checker, else 1
	PreR, PreC, PostR, PostC int     // gather offsets when !Checker, else 0
	Scale                    float32 // 1/√(rows·cols)
}

// CentringFor picks the centring for rows×cols images.
func CentringFor(rows, cols int) Centring {
	c := Centring{Sign: 1, Scale: float32(1 / math.Sqrt(float64(rows)*float64(cols)))}
	if rows%2 == 0 && cols%2 == 0 {
		c.Checker = true
		if (rows/2+cols/2)%2 == 1 {
			c.Sign = -1
		}
		return c
	}
	c.PreR, c.PreC = rows/2, cols/2
	c.PostR, c.PostC = (rows+1)/2, (cols+1)/2
	return c
}

// DevicePlan computes Forward and Inverse on the GPU (cuFFT) for a fixed
// batch of rows×cols complex64 images in device memory.
type DevicePlan struct {
	ctx               *gpu.Context
	rows, cols, batch int
	raw               *gpu.FFT
	cent              Centring
	checker, gather   *gpu.Kernel
	scratch           gpu.Ptr // one batch, for the permuting centring
}

// NewDevicePlan makes a plan for batch images of rows×cols.
func NewDevicePlan(ctx *gpu.Context, rows, cols, batch int) (*DevicePlan, error) {
	if rows <= 0 || cols <= 0 || rows > MaxLen || cols > MaxLen || batch < 1 {
		return nil, fmt.Errorf("fft: device plan for %d images of %d×%d", batch, rows, cols)
	}
	m, err := ctx.Compile("fft", cudaSource)
	if err != nil {
		return nil, err
	}
	raw, err := ctx.NewFFT(rows, cols, batch)
	if err != nil {
		return nil, err
	}
	p := &DevicePlan{ctx: ctx, rows: rows, cols: cols, batch: batch, raw: raw, cent: CentringFor(rows, cols),
		checker: m.Kernel("fft_checker"), gather: m.Kernel("fft_gather")}
	if !p.cent.Checker {
		if p.scratch, err = ctx.Alloc(8 * batch * rows * cols); err != nil {
			raw.Close()
			return nil, err
		}
	}
	return p, nil
}

// Centring is the plan's centring.
func (p *DevicePlan) Centring() Centring { return p.cent }

// Raw is the underlying cuFFT plan (in place, unshifted, unnormalised).
func (p *DevicePlan) Raw() *gpu.FFT { return p.raw }

// Len is the number of values one call transforms.
func (p *DevicePlan) Len() int { return p.batch * p.rows * p.cols }

// Forward writes the centred orthonormal DFT of the batch at src into dst
// (queued; dst may be src).
func (p *DevicePlan) Forward(dst, src gpu.Ptr) error { return p.run(dst, src, false) }

// Inverse is the adjoint (and inverse) of Forward.
func (p *DevicePlan) Inverse(dst, src gpu.Ptr) error { return p.run(dst, src, true) }

func (p *DevicePlan) run(dst, src gpu.Ptr, inv bool) error {
	if dst%8 != 0 || src%8 != 0 {
		return fmt.Errorf("fft: device plan: complex64 data at %#x, %#x must be 8-byte aligned", uintptr(dst), uintptr(src))
	}
	c, n := p.cent, p.Len()
	grid, block := gpu.Grid1D(n), gpu.D1(gpu.Block)
	if c.Checker {
		if err := p.checker.Launch(grid, block, 0, gpu.P(dst), gpu.P(src), gpu.I(p.rows), gpu.I(p.cols), gpu.F(1), gpu.L(n)); err != nil {
			return err
		}
		if err := p.raw.Exec(dst, inv); err != nil {
			return err
		}
		return p.checker.Launch(grid, block, 0, gpu.P(dst), gpu.P(dst), gpu.I(p.rows), gpu.I(p.cols), gpu.F(c.Sign*c.Scale), gpu.L(n))
	}
	if err := p.gather.Launch(grid, block, 0, gpu.P(p.scratch), gpu.P(src), gpu.I(p.rows), gpu.I(p.cols),
		gpu.I(c.PreR), gpu.I(c.PreC), gpu.F(1), gpu.L(n)); err != nil {
		return err
	}
	if err := p.raw.Exec(p.scratch, inv); err != nil {
		return err
	}
	return p.gather.Launch(grid, block, 0, gpu.P(dst), gpu.P(p.scratch), gpu.I(p.rows), gpu.I(p.cols),
		gpu.I(c.PostR), gpu.I(c.PostC), gpu.F(c.Scale), gpu.L(n))
}

// Close releases the plan.
func (p *DevicePlan) Close() error {
	return errors.Join(p.raw.Close(), p.ctx.Free(p.scratch))
}

const cudaSource = `
#define LOOP(i, n) for (long long i = blockIdx.x * (long long)blockDim.x + threadIdx.x; i < (n); \
	i += (long long)gridDim.x * blockDim.x)

// d = scale·(−1)^(r+c)·s for every pixel (r, c) of every image; d may be s.
extern "C" __global__ void fft_checker(float2* d, const float2* s, int rows, int cols, float scale, long long total) {
	long long n = (long long)rows * cols;
	LOOP(i, total) {
		int q = (int)(i % n), r = q / cols, c = q % cols;
		float f = ((r + c) & 1) ? -scale : scale;
		float2 v = s[i];
		d[i] = make_float2(f * v.x, f * v.y);
	}
}

// d[(r, c)] = scale·s[((r+offr) mod rows, (c+offc) mod cols)] per image;
// d must not be s.
extern "C" __global__ void fft_gather(float2* d, const float2* s, int rows, int cols, int offr, int offc, float scale,
                                      long long total) {
	long long n = (long long)rows * cols;
	LOOP(i, total) {
		long long img = i / n;
		int q = (int)(i % n), r = q / cols, c = q % cols;
		int sr = (r + offr) % rows, sc = (c + offc) % cols;
		float2 v = s[img * n + (long long)sr * cols + sc];
		d[i] = make_float2(scale * v.x, scale * v.y);
	}
}
`
