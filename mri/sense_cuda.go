//go:build cuda

package mri

import (
	"errors"
	"fmt"
	"math"

	"github.com/kspaced/kspaced/fft"
	"github.com/kspaced/kspaced/internal/gpu"
)

func init() { gpu.RegisterSource("mri", senseSource) }

// DeviceSENSE is the SENSE operator A = M·F·S with coil maps, mask and work
// buffers in GPU memory. The …Device methods take device pointers and never
// touch the host: a sampler whose iterates live on the GPU calls them
// directly. Forward, Adjoint and Normal implement Operator on host slices
// by copying through device staging buffers, for use with the CPU solvers
// and for testing.
//
// Each application is three launches and one batched cuFFT over the coils:
// the coil multiply, the centring and the mask are folded into the passes
// before and after the transform (see fft.Centring), and the adjoint sums
// the coils per pixel in coil order, so results are deterministic. Like
// SENSE it is not safe for concurrent use; build one per goroutine.
type DeviceSENSE struct {
	ctx                  *gpu.Context
	coils, rows, cols, n int
	maps, mask           gpu.Ptr // complex64 [coils][n], float32 [n]
	plan                 *fft.DevicePlan
	cent                 fft.Centring
	tmp                  gpu.Ptr // complex64 [coils][n]
	in, out              gpu.Ptr // host-path staging: [n], [coils][n]

	expand, maskOut, maskIn, maskMid, combine *gpu.Kernel

	err error // first failure of a host-path call
}

// NewDeviceSENSE uploads maps ([coil][rows][cols]) and mask ([ky][kx]) and
// prepares the transforms. It checks its arguments like CheckSENSE.
func NewDeviceSENSE(ctx *gpu.Context, maps []complex64, coils, rows, cols int, mask []float32) (*DeviceSENSE, error) {
	if err := CheckSENSE(maps, coils, rows, cols, mask); err != nil {
		return nil, fmt.Errorf("mri: %w", err)
	}
	m, err := ctx.Compile("mri", senseSource)
	if err != nil {
		return nil, err
	}
	n := rows * cols
	s := &DeviceSENSE{ctx: ctx, coils: coils, rows: rows, cols: cols, n: n, cent: fft.CentringFor(rows, cols),
		expand: m.Kernel("sense_expand"), maskOut: m.Kernel("sense_mask_out"), maskIn: m.Kernel("sense_mask_in"),
		maskMid: m.Kernel("sense_mask_mid"), combine: m.Kernel("sense_combine")}
	if s.plan, err = fft.NewDevicePlan(ctx, rows, cols, coils); err != nil {
		return nil, err
	}
	for _, b := range []struct {
		p     *gpu.Ptr
		bytes int
	}{{&s.maps, 8 * coils * n}, {&s.mask, 4 * n}, {&s.tmp, 8 * coils * n}, {&s.in, 8 * n}, {&s.out, 8 * coils * n}} {
		if *b.p, err = ctx.Alloc(b.bytes); err != nil {
			s.Close()
			return nil, err
		}
	}
	if err := errors.Join(gpu.Upload(ctx, s.maps, maps), gpu.Upload(ctx, s.mask, mask)); err != nil {
		s.Close()
		return nil, err
	}
	return s, nil
}

// Close releases the operator's device memory.
func (s *DeviceSENSE) Close() error {
	var err error
	if s.plan != nil {
		err = s.plan.Close()
	}
	for _, p := range []gpu.Ptr{s.maps, s.mask, s.tmp, s.in, s.out} {
		err = errors.Join(err, s.ctx.Free(p))
	}
	s.maps, s.mask, s.tmp, s.in, s.out, s.plan = 0, 0, 0, 0, 0, nil
	return err
}

func (s *DeviceSENSE) InLen() int  { return s.n }
func (s *DeviceSENSE) OutLen() int { return s.coils * s.n }

// Shape returns coils, rows and cols.
func (s *DeviceSENSE) Shape() (coils, rows, cols int) { return s.coils, s.rows, s.cols }

func (s *DeviceSENSE) grid(n int) (gpu.Dim3, gpu.Dim3) { return gpu.Grid1D(n), gpu.D1(gpu.Block) }

func (s *DeviceSENSE) chk() int {
	if s.cent.Checker {
		return 1
	}
	return 0
}

// expandInto writes tmp = ifftshift-side of S·x for every coil.
func (s *DeviceSENSE) expandInto(src gpu.Ptr) error {
	total := s.coils * s.n
	g, b := s.grid(total)
	return s.expand.Launch(g, b, 0, gpu.P(s.tmp), gpu.P(s.maps), gpu.P(src), gpu.I(s.coils), gpu.I(s.rows), gpu.I(s.cols),
		gpu.I(s.cent.PreR), gpu.I(s.cent.PreC), gpu.I(s.chk()), gpu.L(total))
}

func (s *DeviceSENSE) combineInto(dst gpu.Ptr, scale float32) error {
	g, b := s.grid(s.n)
	return s.combine.Launch(g, b, 0, gpu.P(dst), gpu.P(s.tmp), gpu.P(s.maps), gpu.I(s.coils), gpu.I(s.rows), gpu.I(s.cols),
		gpu.I(s.cent.PostR), gpu.I(s.cent.PostC), gpu.I(s.chk()), gpu.F(scale), gpu.L(s.n))
}

func aligned(dst, src gpu.Ptr) error {
	if dst%8 != 0 || src%8 != 0 {
		return fmt.Errorf("mri: device SENSE: complex64 data at %#x, %#x must be 8-byte aligned", uintptr(dst), uintptr(src))
	}
	return nil
}

// ForwardDevice sets dst ([coil][ky][kx], device) = A·src ([rows][cols],
// device). Work is queued; dst must not overlap src. Both must be 8-byte
// aligned (complex64).
func (s *DeviceSENSE) ForwardDevice(dst, src gpu.Ptr) error {
	if err := s.coilSpectra(dst, src); err != nil {
		return err
	}
	total := s.coils * s.n
	g, b := s.grid(total)
	return s.maskOut.Launch(g, b, 0, gpu.P(dst), gpu.P(s.tmp), gpu.P(s.mask), gpu.I(s.rows), gpu.I(s.cols),
		gpu.I(s.cent.PostR), gpu.I(s.cent.PostC), gpu.I(s.chk()), gpu.F(s.cent.Sign*s.cent.Scale), gpu.L(total))
}

// coilSpectra fills s.tmp with the FFT of every coil image S_c·src, before
// the output-side centring and the mask: the start of Forward and Normal.
func (s *DeviceSENSE) coilSpectra(dst, src gpu.Ptr) error {
	if err := aligned(dst, src); err != nil {
		return err
	}
	if err := s.expandInto(src); err != nil {
		return err
	}
	return s.plan.Raw().Exec(s.tmp, false)
}

// AdjointDevice sets dst (image) = Aᴴ·src (k-space), both on the device.
func (s *DeviceSENSE) AdjointDevice(dst, src gpu.Ptr) error {
	if err := aligned(dst, src); err != nil {
		return err
	}
	total := s.coils * s.n
	g, b := s.grid(total)
	if err := s.maskIn.Launch(g, b, 0, gpu.P(s.tmp), gpu.P(src), gpu.P(s.mask), gpu.I(s.rows), gpu.I(s.cols),
		gpu.I(s.cent.PreR), gpu.I(s.cent.PreC), gpu.I(s.chk()), gpu.L(total)); err != nil {
		return err
	}
	if err := s.plan.Raw().Exec(s.tmp, true); err != nil {
		return err
	}
	return s.combineInto(dst, s.cent.Sign*s.cent.Scale)
}

// NormalDevice sets dst = AᴴA·src without leaving the coil images: the
// shifts between the two transforms cancel and the mask is applied once,
// as SENSE.Normal does.
func (s *DeviceSENSE) NormalDevice(dst, src gpu.Ptr) error {
	if err := s.coilSpectra(dst, src); err != nil {
		return err
	}
	total := s.coils * s.n
	g, b := s.grid(total)
	if err := s.maskMid.Launch(g, b, 0, gpu.P(s.tmp), gpu.P(s.mask), gpu.I(s.rows), gpu.I(s.cols),
		gpu.I(s.cent.PreR), gpu.I(s.cent.PreC), gpu.F(s.cent.Scale*s.cent.Scale), gpu.L(total)); err != nil {
		return err
	}
	if err := s.plan.Raw().Exec(s.tmp, true); err != nil {
		return err
	}
	return s.combineInto(dst, 1)
}

// Err is the first error of a host-path call (Forward, Adjoint, Normal),
// which cannot return one; those calls fill dst with NaN after a failure.
func (s *DeviceSENSE) Err() error { return s.err }

func (s *DeviceSENSE) host(dst, src []complex64, inBuf, outBuf gpu.Ptr, op func(dst, src gpu.Ptr) error) {
	if s.err == nil {
		s.err = errors.Join(gpu.Upload(s.ctx, inBuf, src), op(outBuf, inBuf), gpu.Download(s.ctx, dst, outBuf))
		if s.err != nil {
			s.err = fmt.Errorf("mri: device SENSE: %w", s.err)
		}
	}
	if s.err != nil {
		nan := float32(math.NaN())
		for i := range dst {
			dst[i] = complex(nan, nan)
		}
	}
}

// Forward implements Operator.
func (s *DeviceSENSE) Forward(dst, src []complex64) {
	checkLens("device SENSE forward", dst, src, s.OutLen(), s.InLen())
	s.host(dst, src, s.in, s.out, s.ForwardDevice)
}

// Adjoint implements Operator.
func (s *DeviceSENSE) Adjoint(dst, src []complex64) {
	checkLens("device SENSE adjoint", dst, src, s.InLen(), s.OutLen())
	s.host(dst, src, s.out, s.in, s.AdjointDevice)
}

// Normal is AᴴA (NormalOperator).
func (s *DeviceSENSE) Normal(dst, src []complex64) {
	checkLens("device SENSE normal", dst, src, s.InLen(), s.InLen())
	s.host(dst, src, s.in, s.in, func(d, x gpu.Ptr) error { return s.NormalDevice(d, x) })
}

// senseSource: complex values are float2; n = rows·cols pixels per coil.
// Gather offsets and the checkerboard flag come from fft.Centring.
const senseSource = `
#define LOOP(i, n) for (long long i = blockIdx.x * (long long)blockDim.x + threadIdx.x; i < (n); \
	i += (long long)gridDim.x * blockDim.x)

__device__ float2 cmul(float2 a, float2 b) { return make_float2(a.x * b.x - a.y * b.y, a.x * b.y + a.y * b.x); }
__device__ float2 cjmul(float2 a, float2 b) { return make_float2(a.x * b.x + a.y * b.y, a.x * b.y - a.y * b.x); }
__device__ int flip(int checker, int r, int c) { return checker && ((r + c) & 1); }

// tmp[c][q] = maps[c][p]·x[p], p the pre-transform gather of q, negated on
// odd pixels for the checkerboard centring.
extern "C" __global__ void sense_expand(float2* tmp, const float2* maps, const float2* x, int coils, int rows, int cols,
                                        int offr, int offc, int checker, long long total) {
	long long n = (long long)rows * cols;
	LOOP(i, total) {
		long long c = i / n;
		int q = (int)(i % n), r = q / cols, cc = q % cols;
		long long p = (long long)((r + offr) % rows) * cols + (cc + offc) % cols;
		float2 v = cmul(maps[c * n + p], x[p]);
		if (flip(checker, r, cc)) v = make_float2(-v.x, -v.y);
		tmp[i] = v;
	}
}

// dst[c][q] = scale·mask[q]·tmp[c][post gather of q] (·(−1)^(r+c)).
extern "C" __global__ void sense_mask_out(float2* dst, const float2* tmp, const float* mask, int rows, int cols,
                                          int offr, int offc, int checker, float scale, long long total) {
	long long n = (long long)rows * cols;
	LOOP(i, total) {
		long long c = i / n;
		int q = (int)(i % n), r = q / cols, cc = q % cols;
		float f = scale * mask[q];
		if (flip(checker, r, cc)) f = -f;
		float2 v = tmp[c * n + (long long)((r + offr) % rows) * cols + (cc + offc) % cols];
		dst[i] = make_float2(f * v.x, f * v.y);
	}
}

// tmp[c][q] = mask[p]·y[c][p], p the pre-transform gather of q (·(−1)^(r+c)).
extern "C" __global__ void sense_mask_in(float2* tmp, const float2* y, const float* mask, int rows, int cols, int offr,
                                         int offc, int checker, long long total) {
	long long n = (long long)rows * cols;
	LOOP(i, total) {
		long long c = i / n;
		int q = (int)(i % n), r = q / cols, cc = q % cols;
		long long p = (long long)((r + offr) % rows) * cols + (cc + offc) % cols;
		float f = mask[p];
		if (flip(checker, r, cc)) f = -f;
		float2 v = y[c * n + p];
		tmp[i] = make_float2(f * v.x, f * v.y);
	}
}

// Between the forward and inverse raw transforms of the normal operator:
// tmp[c][q] *= scale·mask[centred position of q].
extern "C" __global__ void sense_mask_mid(float2* tmp, const float* mask, int rows, int cols, int offr, int offc,
                                          float scale, long long total) {
	long long n = (long long)rows * cols;
	LOOP(i, total) {
		int q = (int)(i % n), r = q / cols, cc = q % cols;
		float f = scale * mask[(long long)((r + offr) % rows) * cols + (cc + offc) % cols];
		float2 v = tmp[i];
		tmp[i] = make_float2(f * v.x, f * v.y);
	}
}

// x[q] = scale·Σ_c conj(maps[c][q])·tmp[c][post gather of q] (·(−1)^(r+c)),
// coils added in order.
extern "C" __global__ void sense_combine(float2* x, const float2* tmp, const float2* maps, int coils, int rows, int cols,
                                         int offr, int offc, int checker, float scale, long long n) {
	LOOP(q, n) {
		int r = (int)(q / cols), cc = (int)(q % cols);
		long long p = (long long)((r + offr) % rows) * cols + (cc + offc) % cols;
		float2 acc = make_float2(0.0f, 0.0f);
		for (int c = 0; c < coils; c++) {
			float2 v = cjmul(maps[c * n + q], tmp[c * n + p]);
			acc.x += v.x;
			acc.y += v.y;
		}
		float f = flip(checker, r, cc) ? -scale : scale;
		x[q] = make_float2(f * acc.x, f * acc.y);
	}
}
`
