package priors

import (
	"fmt"
	"slices"
)

// A U-Net is fully convolutional apart from attention and group norm, which
// work on any number of positions, so one set of weights serves any image
// size. UNetConfig.Rows/Cols are only the size it was built (trained) at.
// Other sizes are padded up to a multiple of the network's stride and
// cropped back.
//
// Padding is by reflection, not zeros: x_t carries noise of level σ
// everywhere the network was trained, so a band of exact zeros around the
// image is outside the training distribution (at σ = 100 it is a sharp
// edge against ±100 noise), while a mirrored band has the image's own
// statistics and no edge. The crop of a reflect-padded pass is still a
// differentiable map of the input; its vector–Jacobian product folds the
// padding's gradient back onto the pixels it copied.

// Stride is the factor every image side must divide by for the network
// itself: the unshuffle factor times 2^(levels−1).
func (c UNetConfig) Stride() int { return c.Unshuffle << (len(c.Widths) - 1) }

// maxViews bounds the padded sizes a UNet keeps graphs for at once.
const maxViews = 4

// AtSize returns a denoiser for rows×cols complex images running this
// network's weights (shared, not copied: training u changes it too). When
// rows×cols is u's own size it returns u itself. The views are cached on u,
// so asking again for a size reuses its graphs; like u, a view is not safe
// for concurrent use, nor concurrently with u.
func (u *UNet) AtSize(rows, cols int) (Denoiser, error) {
	if rows < 1 || cols < 1 || rows > unetMaxSide || cols > unetMaxSide {
		return nil, fmt.Errorf("unet: image size %d×%d", rows, cols)
	}
	if rows == u.cfg.Rows && cols == u.cfg.Cols {
		return u, nil
	}
	s := u.cfg.Stride()
	pr, pc := (rows+s-1)/s*s, (cols+s-1)/s*s
	inner := u
	if pr != u.cfg.Rows || pc != u.cfg.Cols {
		key := [2]int{pr, pc}
		if u.views == nil {
			u.views = map[[2]int]*UNet{}
		}
		v, ok := u.views[key]
		if !ok {
			// Each view keeps its own graphs (activations); bound them so a
			// long-lived prior fed many matrix sizes does not grow without end.
			if len(u.views) >= maxViews {
				for k := range u.views {
					delete(u.views, k)
				}
			}
			cfg := u.Config()
			cfg.Rows, cfg.Cols = pr, pc
			if err := cfg.Validate(); err != nil {
				return nil, err
			}
			v = &UNet{cfg: cfg, be: u.be, params: u.params, byName: u.byName, MaxBatch: u.MaxBatch,
				MemoryBudget: u.MemoryBudget, VJPMemoryBudget: u.VJPMemoryBudget, graphs: map[int]*unetGraph{}, cov: u.cov}
			u.views[key] = v
		}
		inner = v
	}
	if pr == rows && pc == cols {
		return inner, nil
	}
	return &paddedDenoiser{inner: inner, rows: rows, cols: cols, pr: pr, pc: pc}, nil
}

// ForSize returns d itself when it denoises rows×cols images, or a view of
// a U-Net at that size (UNet.AtSize). Other priors (a Gaussian's mean and
// covariance are per pixel) serve only their own size.
func ForSize(d Denoiser, rows, cols int) (Denoiser, error) {
	c, h, w := d.Shape()
	if h == rows && w == cols {
		return d, nil
	}
	if u, ok := d.(*UNet); ok {
		return u.AtSize(rows, cols)
	}
	return nil, fmt.Errorf("prior is for %d×%d images (%d channels) and, not being a network, serves no other size; this image is %d×%d", h, w, c, rows, cols)
}

// paddedDenoiser runs inner on the reflect-padded image and crops back:
// d(x) = C·D(P x); its VJP is Pᵀ·J_Dᵀ·Cᵀ v.
type paddedDenoiser struct {
	inner      Denoiser
	rows, cols int // outer (image) size
	pr, pc     int // inner (padded) size
	xp, dp, vp []float32
}

func (p *paddedDenoiser) Shape() (int, int, int) {
	c, _, _ := p.inner.Shape()
	return c, p.rows, p.cols
}

func (p *paddedDenoiser) buffers(n int) (c int, err error) {
	c, _, _ = p.inner.Shape()
	m := n * c * p.pr * p.pc
	if cap(p.xp) < m {
		p.xp, p.dp, p.vp = make([]float32, m), make([]float32, m), make([]float32, m)
	}
	p.xp, p.dp, p.vp = p.xp[:m], p.dp[:m], p.vp[:m]
	return c, nil
}

func (p *paddedDenoiser) check(dst, xt, sigma []float32) (int, error) {
	c, _, _ := p.inner.Shape()
	per := c * p.rows * p.cols
	if len(sigma) == 0 || len(xt) != len(sigma)*per || len(dst) != len(xt) {
		return 0, fmt.Errorf("padded denoiser: %d noise levels need %d values, got x_t %d and dst %d", len(sigma), len(sigma)*per, len(xt), len(dst))
	}
	return p.buffers(len(sigma))
}

func (p *paddedDenoiser) Denoise(dst, xt, sigma []float32) error {
	c, err := p.check(dst, xt, sigma)
	if err != nil {
		return err
	}
	reflectPad(p.xp, xt, len(sigma)*c, p.rows, p.cols, p.pr, p.pc)
	if err := p.inner.Denoise(p.dp, p.xp, sigma); err != nil {
		return err
	}
	crop(dst, p.dp, len(sigma)*c, p.rows, p.cols, p.pr, p.pc)
	return nil
}

func (p *paddedDenoiser) DenoiseVJP(dst, xt, sigma []float32) (func(dst, v []float32) error, error) {
	c, err := p.check(dst, xt, sigma)
	if err != nil {
		return nil, err
	}
	planes := len(sigma) * c
	reflectPad(p.xp, xt, planes, p.rows, p.cols, p.pr, p.pc)
	ivjp, err := p.inner.DenoiseVJP(p.dp, p.xp, sigma)
	if err != nil {
		return nil, err
	}
	crop(dst, p.dp, planes, p.rows, p.cols, p.pr, p.pc)
	n := len(xt)
	return func(vdst, v []float32) error {
		if len(v) != n || len(vdst) != n {
			return fmt.Errorf("padded denoiser: vjp of %d values needs v and dst of that length, got %d and %d", n, len(v), len(vdst))
		}
		// Cᵀ v: v in the image window, zeros in the padding.
		clear(p.vp)
		for k := 0; k < planes; k++ {
			for r := 0; r < p.rows; r++ {
				copy(p.vp[(k*p.pr+r)*p.pc:(k*p.pr+r)*p.pc+p.cols], v[(k*p.rows+r)*p.cols:(k*p.rows+r+1)*p.cols])
			}
		}
		if err := ivjp(p.dp, p.vp); err != nil {
			return err
		}
		reflectPadAdjoint(vdst, p.dp, planes, p.rows, p.cols, p.pr, p.pc)
		return nil
	}, nil
}

// reflectIndex maps a padded coordinate i ≥ 0 to the source coordinate of
// an n-long axis mirrored about its end samples (…2 1 0 1 2 … n−2 n−1 n−2 …),
// any number of times over, so pads longer than n work too.
func reflectIndex(i, n int) int {
	if n == 1 {
		return 0
	}
	p := 2 * (n - 1)
	i %= p
	if i >= n {
		i = p - i
	}
	return i
}

// reflectPad writes planes h×w images of src into the top-left of planes
// ph×pw images of dst, continuing them by reflection to the right and below.
func reflectPad(dst, src []float32, planes, h, w, ph, pw int) {
	for k := 0; k < planes; k++ {
		for r := 0; r < ph; r++ {
			s := src[(k*h+reflectIndex(r, h))*w:]
			d := dst[(k*ph+r)*pw : (k*ph+r+1)*pw]
			copy(d, s[:w])
			for c := w; c < pw; c++ {
				d[c] = s[reflectIndex(c, w)]
			}
		}
	}
}

// reflectPadAdjoint is the transpose of reflectPad: each source pixel
// receives the sum of every padded pixel copied from it.
func reflectPadAdjoint(dst, src []float32, planes, h, w, ph, pw int) {
	clear(dst[:planes*h*w])
	for k := 0; k < planes; k++ {
		for r := 0; r < ph; r++ {
			d := dst[(k*h+reflectIndex(r, h))*w:]
			s := src[(k*ph+r)*pw : (k*ph+r+1)*pw]
			for c, v := range s {
				d[reflectIndex(c, w)] += v
			}
		}
	}
}

// crop copies the top-left h×w window of planes ph×pw images.
func crop(dst, src []float32, planes, h, w, ph, pw int) {
	for k := 0; k < planes; k++ {
		for r := 0; r < h; r++ {
			copy(dst[(k*h+r)*w:(k*h+r+1)*w], src[(k*ph+r)*pw:])
		}
	}
}

// sizeFreeConfig compares architectures without their build size, which a
// checkpoint does not bind (weights load into a network of any size).
func sizeFreeConfig(c UNetConfig) UNetConfig {
	c.Rows, c.Cols = 0, 0
	c.Widths = slices.Clone(c.Widths)
	if len(c.Attention) == 0 {
		c.Attention = nil
	}
	return c
}
