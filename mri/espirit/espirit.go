// Package espirit estimates coil sensitivity maps by ESPIRiT (Uecker et
// al., MRM 2014) from the fully sampled centre of multi-coil k-space, as
// `bart ecalib` does, and measures that centre (ACSWidth).
package espirit

import (
	"context"
	"fmt"
	"math"
	"math/cmplx"
	"runtime"
	"sync"
	"sync/atomic"

	"github.com/kspaced/kspaced/internal/parallel"
	"github.com/kspaced/kspaced/mri"
)

// Options are the calibration settings of ESPIRiT (Uecker et al.,
// MRM 2014). Zero fields take the defaults of `bart ecalib`.
type Options struct {
	// Calib is the largest side of the calibration region, as `bart ecalib -r`
	// (default 24). The region is the largest centred block, up to Calib×Calib,
	// whose every location is sampled. AutoCalib instead takes the whole fully
	// sampled centre, up to MaxAutoCalib.
	Calib int
	// Kernel is the k-space kernel side, as `-k` (default 6).
	Kernel int
	// Threshold sizes the signal subspace exactly as `bart ecalib -t`
	// (default 0.001): singular vectors of the calibration matrix with
	// σ/σ_max > √Threshold are kept (so 0.001 keeps σ above 3.2% of σ_max).
	Threshold float64
	// Crop zeroes the maps where the per-pixel eigenvalue is ≤ Crop, as `-c`
	// (default 0.8); a negative value crops nothing.
	Crop float64
}

// AutoCalib as Options.Calib calibrates on the whole fully sampled
// centre of k-space.
const AutoCalib = -1

// MaxAutoCalib bounds the calibration side chosen by AutoCalib; the cost of
// the calibration matrix grows with its fourth power.
const MaxAutoCalib = 64

const (
	espDefaultCalib     = 24
	espDefaultKernel    = 6
	espDefaultThreshold = 0.001
	espDefaultCrop      = 0.8
	espMaxKernel        = 16
	espMaxGram          = 2048    // largest Gram matrix side the eigensolver is given
	espMaxPatchValues   = 1 << 24 // bounds the calibration matrix (256 MiB of complex128)
)

// Maps estimates one set of coil sensitivity maps, [coil][row][col], from
// the fully sampled centre of kspace ([coil][ky][kx], centred as fft.Forward
// makes it). mask ([ky][kx], nonzero = sampled) locates that centre; when it
// is nil, locations where any coil is nonzero count as sampled (as BART
// does). Maps have unit norm over coils at every kept pixel, are zero where
// cropped, and their phase is rotated so that their projection on the first
// principal component of the calibration data is real and positive (BART's
// default).
func Maps(ctx context.Context, kspace []complex64, coils, rows, cols int, mask []float32, opt Options) ([]complex64, error) {
	maps := make([]complex64, len(kspace))
	if err := estimate(ctx, maps, nil, kspace, coils, rows, cols, mask, opt); err != nil {
		return nil, err
	}
	return maps, nil
}

// ACSWidth is the side of the largest centred square of k-space (grown as
// ESPIRiT grows its calibration region) in which every location of mask is
// sampled, or 0 when the centre itself is not sampled or the shape is wrong.
func ACSWidth(mask []float32, rows, cols int) int {
	if rows < 1 || cols < 1 || len(mask) != rows*cols {
		return 0
	}
	w := 0
	for w < min(rows, cols) && espBlockSampled(mask, nil, 0, rows, cols, w+1, w+1) {
		w++
	}
	return w
}

// espirit is ESPIRiT writing into maps and, when evals is not nil, the
// per-pixel eigenvalue ([row][col], before cropping) into evals.
func estimate(ctx context.Context, maps []complex64, evals []float32, kspace []complex64, coils, rows, cols int, mask []float32, opt Options) error {
	if coils < 1 || coils > mri.MaxCoils {
		return fmt.Errorf("espirit: coil count %d outside [1, %d]", coils, mri.MaxCoils)
	}
	if rows < 1 || rows > mri.MaxDim || cols < 1 || cols > mri.MaxDim {
		return fmt.Errorf("espirit: matrix %d×%d outside [1, %d]", rows, cols, mri.MaxDim)
	}
	if len(kspace) != coils*rows*cols {
		return fmt.Errorf("espirit: k-space has %d samples, want %d coils × %d × %d", len(kspace), coils, rows, cols)
	}
	if mask != nil && len(mask) != rows*cols {
		return fmt.Errorf("espirit: mask has %d entries, want %d × %d", len(mask), rows, cols)
	}
	if len(maps) != len(kspace) || (evals != nil && len(evals) != rows*cols) {
		return fmt.Errorf("espirit: output buffers have wrong lengths")
	}
	calib, k, thresh, crop := opt.Calib, opt.Kernel, opt.Threshold, opt.Crop
	if calib == 0 {
		calib = espDefaultCalib
	}
	if calib == AutoCalib {
		calib = MaxAutoCalib
	}
	if calib < 1 {
		return fmt.Errorf("espirit: calibration size %d: want a positive size or AutoCalib", opt.Calib)
	}
	if k == 0 {
		k = espDefaultKernel
	}
	if k < 1 || k > espMaxKernel {
		return fmt.Errorf("espirit: kernel size %d outside [1, %d]", k, espMaxKernel)
	}
	if thresh == 0 {
		thresh = espDefaultThreshold
	}
	if !(thresh > 0 && thresh < 1) {
		return fmt.Errorf("espirit: threshold %v outside (0, 1)", opt.Threshold)
	}
	if crop == 0 {
		crop = espDefaultCrop
	}
	if math.IsNaN(crop) || crop >= 1 {
		return fmt.Errorf("espirit: crop %v: want a value below 1", opt.Crop)
	}

	cr, cc := espCalibRegion(mask, kspace, coils, rows, cols, calib)
	if cr < k || cc < k {
		return fmt.Errorf("espirit: fully sampled centre is %d×%d, smaller than the %d×%d kernel", cr, cc, k, k)
	}
	r0, c0 := espCentre(rows, cr), espCentre(cols, cc)
	cal := make([]complex128, coils*cr*cc)
	for c := 0; c < coils; c++ {
		for y := 0; y < cr; y++ {
			for x := 0; x < cc; x++ {
				v := kspace[(c*rows+r0+y)*cols+c0+x]
				if !finite(v) {
					return fmt.Errorf("espirit: calibration sample (coil %d, ky %d, kx %d) is not finite", c, r0+y, c0+x)
				}
				cal[(c*cr+y)*cc+x] = complex128(v)
			}
		}
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	kern, err := espKernels(cal, coils, cr, cc, k, thresh)
	if err != nil {
		return err
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	g := espKernelCorrelation(kern, coils, k)
	rot := espFirstComponent(cal, coils, cr*cc)
	return espPixelMaps(ctx, maps, evals, g, rot, coils, rows, cols, k, crop)
}

// espCentre is where a centred block of n lines starts among size: around
// the DC line size/2, one line more before it than after when n is even
// (as BART for even n; odd n stay symmetric about DC).
func espCentre(size, n int) int { return (size - n + 1) / 2 }

// espBlockSampled reports whether the centred h×w block is entirely sampled:
// by mask when it is set, otherwise by a nonzero value in some coil of kspace.
func espBlockSampled(mask []float32, kspace []complex64, coils, rows, cols, h, w int) bool {
	r0, c0 := espCentre(rows, h), espCentre(cols, w)
	for y := r0; y < r0+h; y++ {
		for x := c0; x < c0+w; x++ {
			i := y*cols + x
			if mask != nil {
				if mask[i] == 0 {
					return false
				}
				continue
			}
			hit := false
			for c := 0; c < coils && !hit; c++ {
				hit = kspace[c*rows*cols+i] != 0
			}
			if !hit {
				return false
			}
		}
	}
	return true
}

// espCalibRegion grows a centred block one line at a time, alternating
// columns (BART's readout) and rows, while it stays fully sampled and within
// limit, and returns its size.
func espCalibRegion(mask []float32, kspace []complex64, coils, rows, cols, limit int) (h, w int) {
	if !espBlockSampled(mask, kspace, coils, rows, cols, 1, 1) {
		return 0, 0
	}
	h, w = 1, 1
	growW, growH := true, true
	for growW || growH {
		if growW {
			if w < min(cols, limit) && espBlockSampled(mask, kspace, coils, rows, cols, h, w+1) {
				w++
			} else {
				growW = false
			}
		}
		if growH {
			if h < min(rows, limit) && espBlockSampled(mask, kspace, coils, rows, cols, h+1, w) {
				h++
			} else {
				growH = false
			}
		}
	}
	return h, w
}

// espKernels returns the orthonormal basis of the signal subspace of the
// calibration patches, one vector of n = coils·k·k entries (index
// (c·k+uy)·k+ux) per row.
func espKernels(cal []complex128, coils, cr, cc, k int, thresh float64) ([][]complex128, error) {
	n := coils * k * k
	py, px := cr-k+1, cc-k+1
	np := py * px
	if min(np, n) > espMaxGram || np*n > espMaxPatchValues {
		return nil, fmt.Errorf("espirit: calibration matrix %d×%d too large (%d coils, kernel %d, region %d×%d)", np, n, coils, k, cr, cc)
	}
	// Patch matrix: row p is the patch at (p/px, p%px), laid out like a kernel.
	patches := make([]complex128, np*n)
	for y := 0; y < py; y++ {
		for x := 0; x < px; x++ {
			row := patches[(y*px+x)*n:]
			for c := 0; c < coils; c++ {
				for uy := 0; uy < k; uy++ {
					copy(row[(c*k+uy)*k:(c*k+uy+1)*k], cal[(c*cr+y+uy)*cc+x:])
				}
			}
		}
	}
	// The kernels span the patches: the dominant eigenvectors of Σₚ aₚaₚᴴ
	// (n×n). With fewer patches than n, decompose the smaller Gram matrix
	// M = [aₚᴴa_q] and map its eigenvectors u to Σₚ aₚ·u[p]/σ instead.
	small := np < n
	// rows holds the m vectors whose inner products form the Gram matrix:
	// the patches themselves, or the columns of the patch matrix.
	m, l, rows := np, n, patches
	if !small {
		m, l = n, np
		rows = make([]complex128, n*np)
		for p := 0; p < np; p++ {
			for i := 0; i < n; i++ {
				rows[i*np+p] = cmplx.Conj(patches[p*n+i])
			}
		}
	}
	gram := make([]complex128, m*m)
	espParallel(m, func(part, parts int) {
		for i := part; i < m; i += parts { // cyclic: rows shrink along the triangle
			a := rows[i*l : (i+1)*l]
			for j := i; j < m; j++ {
				b := rows[j*l : (j+1)*l]
				var s complex128
				for t, at := range a {
					s += cmplx.Conj(at) * b[t]
				}
				gram[i*m+j] = s
				gram[j*m+i] = cmplx.Conj(s)
			}
		}
	})
	eig, err := espNewHermEig(gram, m)
	if err != nil {
		return nil, fmt.Errorf("espirit: %w", err)
	}
	top := eig.vals[m-1]
	if !(top > 0) || math.IsInf(top, 0) {
		return nil, fmt.Errorf("espirit: calibration region holds no signal")
	}
	var kern [][]complex128
	u := make([]complex128, m)
	for j := m - 1; j >= 0 && eig.vals[j] > thresh*top; j-- {
		v := make([]complex128, n)
		eig.vector(u, j)
		if small {
			s := complex(1/math.Sqrt(eig.vals[j]), 0)
			for p := 0; p < np; p++ {
				w := u[p] * s
				a := patches[p*n : (p+1)*n]
				for t := range v {
					v[t] += a[t] * w
				}
			}
		} else {
			copy(v, u)
		}
		kern = append(kern, v)
	}
	return kern, nil
}

// espKernelCorrelation turns the kernels into the coefficients of the
// per-pixel matrix G(r) = (1/k²) Σⱼ Hⱼ(r)Hⱼ(r)ᴴ, Hⱼ,c(r) = Σᵤ vⱼ,c[u]·e^{2πiu·r̃/N}
// (r̃ = r − N/2): the image-space form of projecting every patch onto the
// kernels and averaging the k² estimates of each k-space location. G is a
// trigonometric polynomial, G_cc'(r) = Σ_d g_cc'[d]·e^{2πid·r̃/N} with
// g_cc'[d] = (1/k²) Σᵤ P[(c,u),(c',u−d)] and P = Σⱼ vⱼvⱼᴴ; only c ≤ c' is
// kept, packed as espPair, with d = (dy, dx) in [−(k−1), k−1]², index
// (dy+k−1)·(2k−1)+dx+k−1.
func espKernelCorrelation(kern [][]complex128, coils, k int) []complex128 {
	n := coils * k * k
	proj := make([]complex128, n*n) // upper blocks (c ≤ c') of P
	espParallel(coils, func(part, parts int) {
		for c := part; c < coils; c += parts {
			for a := c * k * k; a < (c+1)*k*k; a++ {
				row := proj[a*n:]
				for _, v := range kern {
					va := v[a]
					for b := c * k * k; b < n; b++ {
						row[b] += va * cmplx.Conj(v[b])
					}
				}
			}
		}
	})
	d := 2*k - 1
	pairs := coils * (coils + 1) / 2
	g := make([]complex128, pairs*d*d)
	scale := complex(1/float64(k*k), 0)
	espParallel(coils, func(part, parts int) {
		for c := part; c < coils; c += parts {
			for c2 := c; c2 < coils; c2++ {
				gp := g[espPair(c, c2, coils)*d*d:]
				for dy := -(k - 1); dy < k; dy++ {
					for dx := -(k - 1); dx < k; dx++ {
						var s complex128
						for uy := max(0, dy); uy < min(k, k+dy); uy++ {
							for ux := max(0, dx); ux < min(k, k+dx); ux++ {
								s += proj[((c*k+uy)*k+ux)*n+(c2*k+uy-dy)*k+ux-dx]
							}
						}
						gp[(dy+k-1)*d+dx+k-1] = s * scale
					}
				}
			}
		}
	})
	return g
}

// espPair indexes the packed upper triangle (c ≤ c2) of a coils×coils matrix.
func espPair(c, c2, coils int) int { return c*coils - c*(c-1)/2 + c2 - c }

// espFirstComponent is the dominant eigenvector of the coil covariance of
// the calibration data, scaled so that its largest entry is real positive.
func espFirstComponent(cal []complex128, coils, npix int) []complex128 {
	cov := make([]complex128, coils*coils)
	for a := 0; a < coils; a++ {
		for b := a; b < coils; b++ {
			var s complex128
			x, y := cal[a*npix:(a+1)*npix], cal[b*npix:(b+1)*npix]
			for i := range x {
				s += x[i] * cmplx.Conj(y[i])
			}
			cov[a*coils+b] = s
			cov[b*coils+a] = cmplx.Conj(s)
		}
	}
	rot := make([]complex128, coils)
	eig, err := espNewHermEig(cov, coils)
	if err != nil { // cannot happen for a finite matrix; fall back to the first coil
		rot[0] = 1
		return rot
	}
	eig.vector(rot, coils-1)
	big := 0
	for i := range rot {
		if cmplx.Abs(rot[i]) > cmplx.Abs(rot[big]) {
			big = i
		}
	}
	if ph := cmplx.Abs(rot[big]); ph > 0 {
		s := cmplx.Conj(rot[big]) / complex(ph, 0)
		for i := range rot {
			rot[i] *= s
		}
	}
	return rot
}

// espPixelMaps evaluates G at every pixel and keeps its dominant
// eigenvector. Rows are shared among all cores.
func espPixelMaps(ctx context.Context, maps []complex64, evals []float32, g, rot []complex128, coils, rows, cols, k int, crop float64) error {
	d := 2*k - 1
	pairs := coils * (coils + 1) / 2
	ex := espTwiddles(cols, k)
	ey := espTwiddles(rows, k)
	// t[(dy·cols + x)·pairs + pair] = Σ_dx g[pair][dy][dx]·e^{2πi·dx·x̃/cols}
	t := make([]complex128, d*cols*pairs)
	espParallel(d, func(part, parts int) {
		for dy := part; dy < d; dy += parts {
			for x := 0; x < cols; x++ {
				tt := t[(dy*cols+x)*pairs : (dy*cols+x+1)*pairs]
				e := ex[x*d : (x+1)*d]
				for p := range tt {
					gg := g[p*d*d+dy*d : p*d*d+dy*d+d]
					var s complex128
					for dx, w := range e {
						s += gg[dx] * w
					}
					tt[p] = s
				}
			}
		}
	})
	npix := rows * cols
	// Rows go out in blocks of espRowBlock so that each pass over t serves
	// several rows; every row still starts from rot at x = 0 and warm-starts
	// along x, so results do not depend on scheduling.
	blocks := (rows + espRowBlock - 1) / espRowBlock
	var next atomic.Int64
	var failed atomic.Bool
	workers := max(1, min(blocks, runtime.GOMAXPROCS(0)))
	var wg sync.WaitGroup
	for w := 0; w < workers; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			packed := make([]complex128, espRowBlock*pairs)
			mat := make([]complex128, coils*coils)
			v := make([]complex128, espRowBlock*coils)
			tmp := make([]complex128, coils)
			eig := espEigWorkspace(coils)
			for {
				blk := int(next.Add(1) - 1)
				if blk >= blocks || failed.Load() {
					return
				}
				if ctx.Err() != nil {
					failed.Store(true)
					return
				}
				y0 := blk * espRowBlock
				nr := min(espRowBlock, rows-y0)
				for r := 0; r < nr; r++ {
					copy(v[r*coils:(r+1)*coils], rot)
				}
				for x := 0; x < cols; x++ {
					clear(packed[:nr*pairs])
					for dy := 0; dy < d; dy++ {
						tt := t[(dy*cols+x)*pairs : (dy*cols+x+1)*pairs]
						for r := 0; r < nr; r++ {
							w := ey[(y0+r)*d+dy]
							pk := packed[r*pairs : (r+1)*pairs]
							for p, tv := range tt {
								pk[p] += w * tv
							}
						}
					}
					for r := 0; r < nr; r++ {
						pk := packed[r*pairs : (r+1)*pairs]
						for a, p := 0, 0; a < coils; a++ {
							for b := a; b < coils; b++ {
								mat[a*coils+b] = pk[p]
								mat[b*coils+a] = cmplx.Conj(pk[p])
								p++
							}
						}
						vr := v[r*coils : (r+1)*coils]
						lambda := espDominant(mat, vr, tmp, eig)
						i := (y0+r)*cols + x
						if evals != nil {
							evals[i] = float32(lambda)
						}
						espStoreMap(maps, i, npix, vr, rot, lambda, crop)
					}
				}
			}
		}()
	}
	wg.Wait()
	if err := ctx.Err(); err != nil {
		return err
	}
	return nil
}

// espRowBlock is how many image rows one worker evaluates together.
const espRowBlock = 8

// espStoreMap writes the unit eigenvector v as pixel i of maps, rotated so
// that its projection on rot is real positive, or zeros where the
// eigenvalue is cropped.
func espStoreMap(maps []complex64, i, npix int, v, rot []complex128, lambda, crop float64) {
	if lambda <= crop || lambda == 0 {
		for c := range v {
			maps[c*npix+i] = 0
		}
		return
	}
	var proj complex128
	for c := range v {
		proj += cmplx.Conj(rot[c]) * v[c]
	}
	s := complex(1, 0)
	if a := cmplx.Abs(proj); a > 0 {
		s = cmplx.Conj(proj) / complex(a, 0)
	}
	for c := range v {
		maps[c*npix+i] = complex64(v[c] * s)
	}
}

// espDominant writes the dominant unit eigenvector of the Hermitian
// positive semi-definite coils×coils matrix a into v, which holds a warm
// start (the neighbouring pixel's vector), and returns its eigenvalue.
// Inside the object ESPIRiT's eigenvalue 1 stands well above the rest, so
// power iteration converges in a few steps; where it has not after
// espPowerSteps (a small gap, typically outside the object), the exact
// decomposition bounds the cost. a is overwritten in that case.
func espDominant(a, v, tmp []complex128, eig *espHermEig) float64 {
	const tol = 1e-14 // squared change of the unit vector
	n := eig.n
	for it := 0; it < espPowerSteps; it++ {
		var nrm float64
		for i := 0; i < n; i++ {
			var s complex128
			row := a[i*n : (i+1)*n]
			for j, vj := range v {
				s += row[j] * vj
			}
			tmp[i] = s
			nrm += espAbs2(s)
		}
		lambda := math.Sqrt(nrm)
		if lambda == 0 || math.IsNaN(lambda) {
			return 0
		}
		inv := complex(1/lambda, 0)
		var diff float64
		for i := range v {
			w := tmp[i] * inv
			diff += espAbs2(w - v[i])
			v[i] = w
		}
		if diff < tol {
			return lambda
		}
	}
	if eig.decompose(a) != nil {
		return 0
	}
	eig.vector(v, n-1)
	return max(eig.vals[n-1], 0)
}

// espPowerSteps caps power iteration per pixel (BART runs 30 steps of
// orthogonal iteration and stops there).
const espPowerSteps = 30

// espTwiddles is e^{2πi·d·(r − ⌊N/2⌋)/N} for r in [0, N) (slowest) and d in
// [−(k−1), k−1].
func espTwiddles(size, k int) []complex128 {
	d := 2*k - 1
	w := make([]complex128, size*d)
	for r := 0; r < size; r++ {
		for j := 0; j < d; j++ {
			ph := 2 * math.Pi * float64((j-(k-1))*(r-size/2)) / float64(size)
			w[r*d+j] = complex(math.Cos(ph), math.Sin(ph))
		}
	}
	return w
}

// espParallel runs f(part, parts) for parts = min(n, cores) on the worker
// pool and waits; f takes items part, part+parts, … of n.
func espParallel(n int, f func(part, parts int)) {
	var wg sync.WaitGroup
	parallel.Run(partFunc(f), parallel.Parts(n), &wg)
}

type partFunc func(part, parts int)

func (f partFunc) Run(part, parts int) { f(part, parts) }

// finite reports whether both parts of v are finite.
func finite(v complex64) bool {
	r, i := float64(real(v)), float64(imag(v))
	return !math.IsNaN(r) && !math.IsInf(r, 0) && !math.IsNaN(i) && !math.IsInf(i, 0)
}
