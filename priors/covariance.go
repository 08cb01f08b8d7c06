package priors

import (
	"errors"
	"fmt"
	"math"

	"github.com/kspaced/kspaced/priors/nn"
)

// Diagonal covariance (OCM, papers/001): Cov[x | x_t] = σ²·∂d/∂x_t (Tweedie)
// costs one VJP per product, so MMPS with it costs a network pass per CG
// iteration. A prior that can also give the diagonal of that covariance,
// from the denoiser's own pass or a small head network, lets MMPS solve its
// system with FFTs and coil products alone.

// DiagDenoiser is a Denoiser that can also give diag Cov[x | x_t], one value
// per real value of the image.
type DiagDenoiser interface {
	Denoiser
	// DenoiseDiag writes d(x_t, σ_i) into dst and the diagonal of
	// Cov[x | x_t] = σ_i²·∂d/∂x_t into diag, for len(sigma) images.
	DenoiseDiag(dst, diag, xt, sigma []float32) error
	// CovDiag writes the diagonal alone (a U-Net's head pass without the
	// denoiser's), for a caller that has d(x_t) from elsewhere (DenoiseVJP).
	CovDiag(diag, xt, sigma []float32) error
}

// ErrNoCovariance is returned by DiagCovariance for a prior without a
// diagonal covariance (a U-Net checkpoint without a covariance head).
var ErrNoCovariance = errors.New("the prior has no diagonal covariance head (train one with `kspaced prior fit-covariance`)")

// DiagCovariance returns d as a DiagDenoiser when it can give the diagonal
// covariance: a Gaussian prior (exact), or a U-Net with a covariance head
// (and its views at other sizes).
func DiagCovariance(d Denoiser) (DiagDenoiser, error) {
	switch v := d.(type) {
	case *Gaussian:
		return v, nil
	case *UNet:
		if v.cov == nil {
			return nil, ErrNoCovariance
		}
		return v, nil
	case *paddedDenoiser:
		if _, err := DiagCovariance(v.inner); err != nil {
			return nil, err
		}
		return v, nil
	case DiagDenoiser:
		return v, nil
	}
	return nil, fmt.Errorf("prior of type %T: %w", d, ErrNoCovariance)
}

// DenoiseDiag implements DiagDenoiser exactly: diag Cov[x | x_t] =
// σ²·diag(Σ(Σ + σ²I)⁻¹) = σ² − σ⁴·diag((Σ + σ²I)⁻¹), the inverse's diagonal
// from the Woodbury form: 1/D_i − u_iᵀC⁻¹u_i/D_i² (O(n r²) per new σ).
func (g *Gaussian) DenoiseDiag(dst, diag, xt, sigma []float32) error {
	if err := g.Denoise(dst, xt, sigma); err != nil {
		return err
	}
	return g.CovDiag(diag, xt, sigma)
}

// CovDiag implements DiagDenoiser.
func (g *Gaussian) CovDiag(diag, xt, sigma []float32) error {
	if len(sigma) == 0 || len(xt) != len(sigma)*g.n {
		return fmt.Errorf("gaussian prior: %d values for %d images of %d", len(xt), len(sigma), g.n)
	}
	if len(diag) != len(xt) {
		return fmt.Errorf("gaussian prior: diagonal of %d values for %d", len(diag), len(xt))
	}
	w := make([]float64, g.r)
	for i, s := range sigma {
		g.factor(float64(s))
		s2 := float64(s) * float64(s)
		out := diag[i*g.n : (i+1)*g.n]
		for k := range g.n {
			inv := g.dinv[k]
			if g.r > 0 {
				copy(w, g.u[k*g.r:(k+1)*g.r])
				g.cholSolveHalf(w)
				var q float64
				for _, v := range w {
					q += v * v
				}
				inv -= g.dinv[k] * g.dinv[k] * q
			}
			out[k] = float32(max(0, s2-s2*s2*inv))
		}
	}
	return nil
}

// cholSolveHalf overwrites b with R⁻ᵀb for the cached C = RᵀR, so that
// ‖R⁻ᵀb‖² = bᵀC⁻¹b.
func (g *Gaussian) cholSolveHalf(b []float64) {
	r := g.r
	for p := range r {
		s := b[p]
		for q := range p {
			s -= g.chol[q*r+p] * b[q]
		}
		b[p] = s / g.chol[p*r+p]
	}
}

// CovHead predicts diag Cov[x | x_t] with a small U-Net F (without the
// denoiser's preconditioning) on the noisy image:
//
//	log c(x_t, σ) = log(σ²/(σ²+1)) + F(x_t/√(σ²+1), log σ),
//
// so F = 0 (near where a fresh network starts) is the posterior variance of
// a unit-variance Gaussian prior, right at both ends of the σ range up to the
// data's scale. One value per real value of the image.
type CovHead struct {
	net     *UNet
	network string       // architecture name (Networks)
	meta    *CovHeadMeta // as read from a checkpoint, nil for a new head
}

// CovHeadParameterisation names the map from F to the diagonal; checkpoints
// record it and readers refuse others.
const CovHeadParameterisation = "log c = log(s^2/(s^2+1)) + F(x_t/sqrt(s^2+1), log s)"

// CovHeadNetworks name the head architectures NewCovHead builds besides
// the denoisers' (Networks). "head" sees 4×4 pixel blocks (a 4× unshuffle
// stem, widths 32/64, no attention): about 0.6 of a small-unshuffle
// denoiser's forward pass at 128² (measured under load), where "tiny" (full
// resolution) costs 1.5 of it. "head-narrow" is "head" with widths 32/32:
// about a fifth of its cost, for large matrices where the head's share grows.
var CovHeadNetworks = []string{"head", "head-narrow"}

// NewCovHead builds a freshly initialised head of the named architecture
// (CovHeadNetworks or Networks) for channels×rows×cols images; seeded.
func NewCovHead(network string, channels, rows, cols int, seed uint64) (*CovHead, error) {
	var cfg UNetConfig
	var err error
	switch network {
	case "head", "head-narrow":
		widths := []int{32, 64}
		if network == "head-narrow" {
			widths = []int{32, 32}
		}
		cfg = UNetConfig{Channels: channels, Rows: rows, Cols: cols, Widths: widths, Blocks: 1, Heads: 1,
			EmbedDim: 32, EmbedMaxPeriod: 1000, Unshuffle: 4, Groups: 8}
		err = cfg.Validate()
	default:
		cfg, err = Network(network, rows, cols)
	}
	if err != nil {
		return nil, fmt.Errorf("covariance head: %w", err)
	}
	cfg.Channels = channels
	u, err := NewUNet(cfg, seed)
	if err != nil {
		return nil, fmt.Errorf("covariance head: %w", err)
	}
	return &CovHead{net: u, network: network}, nil
}

// Network is the head's own U-Net (its parameters are what training moves).
func (h *CovHead) Network() *UNet { return h.net }

// Meta is the head's checkpoint description, nil for a head not read from one.
func (h *CovHead) Meta() *CovHeadMeta { return h.meta }

// Name is the head's architecture name.
func (h *CovHead) Name() string { return h.network }

func (h *CovHead) to(be nn.Backend) (*CovHead, error) {
	u, err := h.net.To(be)
	if err != nil {
		return nil, err
	}
	return &CovHead{net: u, network: h.network, meta: h.meta}, nil
}

// covOffset is log(σ²/(σ²+1)), the head's offset.
func covOffset(sigma float64) float64 { return math.Log(sigma * sigma / (sigma*sigma + 1)) }

// maxLogCov bounds F so a wild head cannot overflow exp.
const maxLogCov = 30

// Diag writes the predicted diagonal for len(sigma) images of xt
// (channels×rows×cols each, any size: other sizes are reflect-padded to the
// network's stride and cropped back).
func (h *CovHead) Diag(dst, xt, sigma []float32) error {
	c, _, _ := h.net.Shape()
	n := len(sigma)
	if n == 0 || len(xt)%(n*c) != 0 || len(dst) != len(xt) {
		return fmt.Errorf("covariance head: %d values for %d images of %d channels", len(xt), n, c)
	}
	per := len(xt) / n
	hw := per / c
	rows, cols := h.net.cfg.Rows, h.net.cfg.Cols
	if hw != rows*cols {
		return fmt.Errorf("covariance head: images of %d pixels, the head is at %d×%d (use ForSize)", hw, rows, cols)
	}
	if err := h.net.checkArgs(dst, xt, sigma); err != nil {
		return err
	}
	for i := 0; i < n; {
		m := min(h.net.chunk(n), n-i)
		ug, err := h.net.graph(m)
		if err != nil {
			return err
		}
		if err := h.net.forward(ug, nil, xt[i*per:(i+m)*per], sigma[i:i+m]); err != nil {
			return err
		}
		for j := range m {
			off := covOffset(float64(sigma[i+j]))
			for k := j * per; k < (j+1)*per; k++ {
				f := math.Max(-maxLogCov, math.Min(maxLogCov, float64(ug.hostIn[k])))
				dst[i*per+k] = float32(math.Exp(off + f))
			}
		}
		i += m
	}
	return nil
}

// atSize is the head for rows×cols images: itself, or a view of its
// network at the padded size (shared weights) with padding done by the
// caller (paddedDenoiser) — the view is always at a stride multiple.
func (h *CovHead) atSize(rows, cols int) (*CovHead, error) {
	if rows == h.net.cfg.Rows && cols == h.net.cfg.Cols {
		return h, nil
	}
	d, err := h.net.AtSize(rows, cols)
	if err != nil {
		return nil, err
	}
	v, ok := d.(*UNet)
	if !ok {
		return nil, fmt.Errorf("covariance head: %d×%d is not a multiple of its stride %d", rows, cols, h.net.cfg.Stride())
	}
	return &CovHead{net: v, network: h.network}, nil
}

// Covariance is the network's covariance head, nil if it has none.
func (u *UNet) Covariance() *CovHead { return u.cov }

// SetCovariance attaches a covariance head (nil detaches it). Its stride
// must divide the network's size.
func (u *UNet) SetCovariance(h *CovHead) error {
	if h == nil {
		u.cov = nil
		return nil
	}
	if c, _, _ := h.net.Shape(); c != u.cfg.Channels {
		return fmt.Errorf("covariance head has %d channels, the network %d", c, u.cfg.Channels)
	}
	s := h.net.cfg.Stride()
	if u.cfg.Rows%s != 0 || u.cfg.Cols%s != 0 {
		return fmt.Errorf("covariance head of stride %d cannot serve %d×%d images", s, u.cfg.Rows, u.cfg.Cols)
	}
	u.cov = h
	return nil
}

// DenoiseDiag implements DiagDenoiser: the denoiser's pass and the head's.
func (u *UNet) DenoiseDiag(dst, diag, xt, sigma []float32) error {
	if u.cov == nil {
		return ErrNoCovariance
	}
	if err := u.Denoise(dst, xt, sigma); err != nil {
		return err
	}
	return u.CovDiag(diag, xt, sigma)
}

// CovDiag implements DiagDenoiser: the head's pass alone. It leaves the
// denoiser's graphs alone, so a vjp from DenoiseVJP stays valid.
func (u *UNet) CovDiag(diag, xt, sigma []float32) error {
	if u.cov == nil {
		return ErrNoCovariance
	}
	h, err := u.cov.atSize(u.cfg.Rows, u.cfg.Cols)
	if err != nil {
		return err
	}
	return h.Diag(diag, xt, sigma)
}

// DenoiseDiag implements DiagDenoiser on the padded image, cropped back.
func (p *paddedDenoiser) DenoiseDiag(dst, diag, xt, sigma []float32) error {
	if _, err := DiagCovariance(p.inner); err != nil {
		return err
	}
	if len(diag) != len(xt) {
		return fmt.Errorf("padded denoiser: diagonal of %d values for %d", len(diag), len(xt))
	}
	if err := p.Denoise(dst, xt, sigma); err != nil {
		return err
	}
	return p.CovDiag(diag, xt, sigma)
}

// CovDiag implements DiagDenoiser on the padded image, cropped back.
func (p *paddedDenoiser) CovDiag(diag, xt, sigma []float32) error {
	inner, err := DiagCovariance(p.inner)
	if err != nil {
		return err
	}
	c, err := p.check(diag, xt, sigma)
	if err != nil {
		return err
	}
	planes := len(sigma) * c
	reflectPad(p.xp, xt, planes, p.rows, p.cols, p.pr, p.pc)
	if err := inner.CovDiag(p.vp, p.xp, sigma); err != nil {
		return err
	}
	crop(diag, p.vp, planes, p.rows, p.cols, p.pr, p.pc)
	return nil
}
