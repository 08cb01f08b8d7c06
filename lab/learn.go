package lab

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"math"
	"math/rand/v2"
	"os"
	"slices"
	"strconv"
	"strings"
	"time"

	"gonum.org/v1/gonum/mat"

	"github.com/kspaced/kspaced/mri/simulate"
	"github.com/kspaced/kspaced/priors"
)

// LearnOptions configure LearnEvidence.
type LearnOptions struct {
	Volumes   []string           // NIfTI volumes (default: the MRIcron ch2 and ch2better templates)
	Size      int                // image side, 64
	Budget    time.Duration      // training wall time, 20 minutes
	Config    *priors.UNetConfig // default: a small U-Net with a pixel-unshuffle stem
	BatchSize int                // 16
	LR        float64            // 1e-3
	Sigmas    []float64          // noise levels evaluated, {0.05, 0.2, 1}
	Seed      uint64
	Copies    int // phase maps per training slice, 2
	Draws     int // noise draws per held-out image and σ, 4
	// Checkpoint, when set, receives a training checkpoint every 500 steps
	// and at the end.
	Checkpoint string
}

// LearnRow is the held-out denoising MSE (per real value) at one σ.
type LearnRow struct {
	Sigma          float64
	Identity       float64 // doing nothing: σ²
	Gaussian       float64 // best PCA/Wiener denoiser over the shrinkage grid
	GaussianShrink float64 // its diagonal loading δ
	UNet           float64
}

// LearnResult is what LearnEvidence measured.
type LearnResult struct {
	TrainImages, HeldOut int
	Steps                int
	TrainTime            time.Duration
	PeakRSS              int64 // bytes: process high-water mark over training steps at the batch size
	Stats                priors.TrainStats
	Rows                 []LearnRow
	Config               priors.UNetConfig
}

// DefaultEvidenceVolumes are the real T1 brain volumes of Debian's mricron-data.
var DefaultEvidenceVolumes = []string{simulate.Volumes["ch2"], simulate.Volumes["ch2better"]}

// LearnEvidence shows the network learns real anatomy: it simulates complex
// axial slices (magnitude from real T1 volumes, random smooth phase),
// holds out a slab of slices, trains a U-Net for a bounded time on the
// rest, and compares held-out denoising MSE with the best Gaussian
// (PCA/Wiener) denoiser fitted to the same training images. A report is
// written to w.
func LearnEvidence(ctx context.Context, opt LearnOptions, w io.Writer) (*LearnResult, error) {
	if len(opt.Volumes) == 0 {
		opt.Volumes = DefaultEvidenceVolumes
	}
	if opt.Size == 0 {
		opt.Size = 64
	}
	if opt.Budget == 0 {
		opt.Budget = 20 * time.Minute
	}
	if opt.BatchSize == 0 {
		opt.BatchSize = 16
	}
	if opt.LR == 0 {
		opt.LR = 1e-3
	}
	if len(opt.Sigmas) == 0 {
		opt.Sigmas = []float64{0.05, 0.2, 1}
	}
	if opt.Copies == 0 {
		opt.Copies = 2
	}
	if opt.Draws == 0 {
		opt.Draws = 4
	}
	cfg := priors.SmallUnshuffleUNet(opt.Size, opt.Size)
	if opt.Config != nil {
		cfg = *opt.Config
	}
	train, held, err := evidenceData(opt)
	if err != nil {
		return nil, err
	}
	res := &LearnResult{TrainImages: train.Len(), HeldOut: held.Len(), Config: cfg}
	fmt.Fprintf(w, "evidence: %d training and %d held-out %dx%d complex slices from %s; %d noise draws each\n",
		train.Len(), held.Len(), opt.Size, opt.Size, strings.Join(opt.Volumes, ", "), opt.Draws)

	gauss, err := fitPCAWiener(train)
	if err != nil {
		return nil, err
	}
	u, err := priors.NewUNet(cfg, opt.Seed)
	if err != nil {
		return nil, err
	}
	fmt.Fprintf(w, "evidence: U-Net %d parameters, widths %v, unshuffle %d; training for %v\n",
		cfg.Params(), cfg.Widths, cfg.Unshuffle, opt.Budget)

	// Peak RSS of training steps: reset the high-water mark, run a few steps.
	resetPeakRSS()
	if _, err := priors.Train(ctx, u, train, priors.TrainOptions{Steps: 3, BatchSize: opt.BatchSize, LR: opt.LR, Seed: opt.Seed}, nil); err != nil {
		return nil, err
	}
	res.PeakRSS = peakRSS()
	u, err = priors.NewUNet(cfg, opt.Seed)
	if err != nil {
		return nil, err
	}
	start := time.Now()
	st, err := priors.Train(ctx, u, train, priors.TrainOptions{Steps: 1 << 30, BatchSize: opt.BatchSize, LR: opt.LR, WarmupSteps: 200,
		Seed: opt.Seed, ValFraction: 0.05, StepsPerEpoch: 200, MaxDuration: opt.Budget, EMADecay: 0.995, DecayStart: 0.5,
		CheckpointPath: opt.Checkpoint, CheckpointEvery: 500, DataDescription: "LearnEvidence: MRIcron T1 axial slices, random smooth phase"}, w)
	if err != nil {
		return nil, err
	}
	res.TrainTime, res.Steps, res.Stats = time.Since(start), st.Steps, st
	fmt.Fprintf(w, "evidence: %d steps in %v; epoch losses %.4f; validation %.4f\n", st.Steps, res.TrainTime.Round(time.Second), st.Loss, st.ValLoss)

	fmt.Fprintf(w, "%8s %12s %12s %10s %12s %10s\n", "sigma", "identity", "gaussian", "shrink", "unet", "unet/gauss")
	for i, s := range opt.Sigmas {
		row := LearnRow{Sigma: s}
		x, xt := evidenceNoisy(held, opt.Draws, s, opt.Seed+uint64(i))
		row.Identity = mse(xt, x)
		row.Gaussian, row.GaussianShrink = gauss.best(x, xt, s)
		out := make([]float32, len(x))
		sig := make([]float32, held.Len()*opt.Draws)
		for k := range sig {
			sig[k] = float32(s)
		}
		if err := u.Denoise(out, xt, sig); err != nil {
			return nil, err
		}
		row.UNet = mse(out, x)
		res.Rows = append(res.Rows, row)
		fmt.Fprintf(w, "%8.3g %12.5g %12.5g %10.3g %12.5g %10.3f\n", s, row.Identity, row.Gaussian, row.GaussianShrink, row.UNet, row.UNet/row.Gaussian)
	}
	fmt.Fprintf(w, "evidence: peak RSS over training steps at batch %d: %.1f MiB\n", opt.BatchSize, float64(res.PeakRSS)/(1<<20))
	return res, nil
}

// evidenceData builds the training set and the held-out slab.
func evidenceData(opt LearnOptions) (train, held *priors.SliceDataset, err error) {
	n := opt.Size
	per := 2 * n * n
	train = &priors.SliceDataset{C: 2, H: n, W: n}
	held = &priors.SliceDataset{C: 2, H: n, W: n}
	rng := rand.New(rand.NewPCG(opt.Seed, 0x65766964))
	for _, path := range opt.Volumes {
		vol, err := simulate.ReadNIfTI(path)
		if err != nil {
			return nil, nil, err
		}
		var slices_ [][]float32
		var zs []int
		var means []float64
		for z := 0; z < vol.Dims[2]; z++ {
			img, rows, cols := vol.Slice(2, z)
			sq := min(rows, cols)
			crop := make([]float32, sq*sq)
			r0, c0 := (rows-sq)/2, (cols-sq)/2
			for r := 0; r < sq; r++ {
				copy(crop[r*sq:(r+1)*sq], img[(r0+r)*cols+c0:(r0+r)*cols+c0+sq])
			}
			small := simulate.Resize(crop, sq, sq, n, n)
			if small == nil {
				return nil, nil, fmt.Errorf("evidence: resize %s slice %d", path, z)
			}
			var m float64
			for _, v := range small {
				m += math.Max(0, float64(v))
			}
			slices_ = append(slices_, small)
			zs = append(zs, z)
			means = append(means, m/float64(len(small)))
		}
		peak := slices.Max(means)
		var keep []int
		for i, m := range means {
			if m > 0.25*peak {
				keep = append(keep, i)
			}
		}
		if len(keep) < 40 {
			return nil, nil, fmt.Errorf("evidence: %s has only %d slices with anatomy", path, len(keep))
		}
		// Normalise by the 99.5th percentile of the kept slices' values.
		var all []float32
		for _, i := range keep {
			all = append(all, slices_[i]...)
		}
		slices.Sort(all)
		scale := float64(all[int(0.995*float64(len(all)-1))])
		if !(scale > 0) {
			return nil, nil, fmt.Errorf("evidence: %s has no positive values", path)
		}
		// Held out: every other slice of a 16-slice slab in the upper middle;
		// slices within 4 of it are used for neither.
		mid := keep[len(keep)*3/5]
		lo, hi := mid-8, mid+8
		for _, i := range keep {
			z := zs[i]
			switch {
			case z >= lo && z < hi && (z-lo)%2 == 0:
				img := evidenceComplex(slices_[i], scale, n, rng)
				held.Data = append(held.Data, img...)
			case z >= lo-4 && z < hi+4:
			default:
				for c := 0; c < opt.Copies; c++ {
					train.Data = append(train.Data, evidenceComplex(slices_[i], scale, n, rng)...)
				}
			}
		}
	}
	if train.Len() == 0 || held.Len() == 0 || len(held.Data)%per != 0 {
		return nil, nil, errors.New("evidence: no data")
	}
	return train, held, nil
}

// evidenceComplex puts a random smooth phase on a magnitude slice.
func evidenceComplex(mag []float32, scale float64, n int, rng *rand.Rand) []float32 {
	ph := simulate.SmoothPhase(n, n, rng)
	out := make([]float32, 2*n*n)
	for k, m := range mag {
		v := math.Max(0, float64(m)) / scale
		out[k] = float32(v * math.Cos(float64(ph[k])))
		out[n*n+k] = float32(v * math.Sin(float64(ph[k])))
	}
	return out
}

// evidenceNoisy repeats the images draws times, each with its own noise.
func evidenceNoisy(ds *priors.SliceDataset, draws int, sigma float64, seed uint64) (x, xt []float32) {
	for range draws {
		x = append(x, ds.Data...)
	}
	xt = make([]float32, len(x))
	r := rand.New(rand.NewPCG(seed, 0x6e6f6973))
	for k := range x {
		xt[k] = x[k] + float32(sigma*r.NormFloat64())
	}
	return x, xt
}

func mse(a, b []float32) float64 {
	var s float64
	for k := range a {
		d := float64(a[k]) - float64(b[k])
		s += d * d
	}
	return s / float64(len(a))
}

// pcaWiener is the Gaussian denoiser fitted to a training set: mean μ and
// the sample covariance U·Λ·Uᵀ (rank ≤ images−1, from the images' Gram
// matrix), loaded with δ·I. Its posterior mean at noise σ is
// μ + U·diag((λ+δ)/(λ+δ+σ²))·Uᵀ(x_t−μ) + δ/(δ+σ²)·(I−UUᵀ)(x_t−μ).
type pcaWiener struct {
	d      int
	mu     []float64
	u      *mat.Dense // d × r, orthonormal columns
	lambda []float64
}

func fitPCAWiener(ds *priors.SliceDataset) (*pcaWiener, error) {
	c, h, w := ds.Shape()
	d, n := c*h*w, ds.Len()
	if n < 2 {
		return nil, errors.New("pca: need two or more images")
	}
	p := &pcaWiener{d: d, mu: make([]float64, d)}
	for i := 0; i < n; i++ {
		for k := 0; k < d; k++ {
			p.mu[k] += float64(ds.Data[i*d+k])
		}
	}
	for k := range p.mu {
		p.mu[k] /= float64(n)
	}
	xc := mat.NewDense(n, d, nil)
	for i := 0; i < n; i++ {
		for k := 0; k < d; k++ {
			xc.Set(i, k, float64(ds.Data[i*d+k])-p.mu[k])
		}
	}
	var gram mat.SymDense
	gram.SymOuterK(1, xc)
	var eig mat.EigenSym
	if !eig.Factorize(&gram, true) {
		return nil, errors.New("pca: eigendecomposition failed")
	}
	vals := eig.Values(nil)
	var vecs mat.Dense
	eig.VectorsTo(&vecs)
	top := vals[len(vals)-1]
	var cols []int
	for j, v := range vals {
		if v > 1e-9*top {
			cols = append(cols, j)
		}
	}
	// U = Xcᵀ·V·diag(1/√s), λ = s/n.
	v := mat.NewDense(n, len(cols), nil)
	for jj, j := range cols {
		s := vals[j]
		p.lambda = append(p.lambda, s/float64(n))
		for i := 0; i < n; i++ {
			v.Set(i, jj, vecs.At(i, j)/math.Sqrt(s))
		}
	}
	p.u = mat.NewDense(d, len(cols), nil)
	p.u.Mul(xc.T(), v)
	return p, nil
}

// denoise returns the posterior means for the images of xt.
func (p *pcaWiener) denoise(xt []float32, sigma, delta float64) []float32 {
	n := len(xt) / p.d
	r := len(p.lambda)
	out := make([]float32, len(xt))
	y := make([]float64, p.d)
	coef := make([]float64, r)
	s2 := sigma * sigma
	for i := 0; i < n; i++ {
		for k := range y {
			y[k] = float64(xt[i*p.d+k]) - p.mu[k]
		}
		yv := mat.NewVecDense(p.d, y)
		cv := mat.NewVecDense(r, coef)
		cv.MulVec(p.u.T(), yv)
		rest := delta / (delta + s2)
		for j := range coef {
			l := p.lambda[j] + delta
			coef[j] *= l/(l+s2) - rest
		}
		var proj mat.VecDense
		proj.MulVec(p.u, cv)
		for k := range y {
			out[i*p.d+k] = float32(p.mu[k] + proj.AtVec(k) + rest*y[k])
		}
	}
	return out
}

// best is the lowest MSE over a grid of diagonal loadings, chosen on the
// evaluation data itself: an optimistic figure for the Gaussian baseline.
func (p *pcaWiener) best(x, xt []float32, sigma float64) (float64, float64) {
	bestM, bestD := math.Inf(1), 0.0
	for _, delta := range []float64{0, 1e-6, 1e-5, 1e-4, 3e-4, 1e-3, 3e-3, 1e-2, 3e-2, 0.1, 0.3} {
		if m := mse(p.denoise(xt, sigma, delta), x); m < bestM {
			bestM, bestD = m, delta
		}
	}
	return bestM, bestD
}

// resetPeakRSS clears the kernel's resident-set high-water mark (Linux).
func resetPeakRSS() { _ = os.WriteFile("/proc/self/clear_refs", []byte("5"), 0) }

// peakRSS reads VmHWM from /proc/self/status, in bytes (0 if unavailable).
func peakRSS() int64 {
	f, err := os.Open("/proc/self/status")
	if err != nil {
		return 0
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if rest, ok := strings.CutPrefix(sc.Text(), "VmHWM:"); ok {
			fs := strings.Fields(rest)
			if len(fs) > 0 {
				kb, _ := strconv.ParseInt(fs[0], 10, 64)
				return kb << 10
			}
		}
	}
	return 0
}
