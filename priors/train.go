package priors

import (
	"context"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"math/rand/v2"
	"slices"
	"time"

	"github.com/schollz/progressbar/v3"

	"github.com/kspaced/kspaced/priors/nn"
)

// Dataset yields training images, each [channels][rows][cols] float32 (EM
// passes posterior samples; simulation passes clean slices).
type Dataset interface {
	Len() int
	Shape() (channels, rows, cols int)
	// Image writes image i into dst (len channels·rows·cols).
	Image(dst []float32, i int) error
}

// SliceDataset is an in-memory Dataset of images stored back to back.
type SliceDataset struct {
	C, H, W int
	Data    []float32
}

// Len implements Dataset.
func (d *SliceDataset) Len() int {
	if per := d.C * d.H * d.W; per > 0 {
		return len(d.Data) / per
	}
	return 0
}

// Shape implements Dataset.
func (d *SliceDataset) Shape() (int, int, int) { return d.C, d.H, d.W }

// Image implements Dataset.
func (d *SliceDataset) Image(dst []float32, i int) error {
	per := d.C * d.H * d.W
	if i < 0 || i >= d.Len() || len(dst) != per {
		return fmt.Errorf("image %d of %d into %d values", i, d.Len(), len(dst))
	}
	copy(dst, d.Data[i*per:(i+1)*per])
	return nil
}

// HashDataset is the hex sha256 of a dataset's shape and little-endian
// float32 values, recorded as training provenance.
func HashDataset(ds Dataset) (string, error) {
	c, h, w := ds.Shape()
	hs := sha256.New()
	var b [8]byte
	for _, v := range []int{ds.Len(), c, h, w} {
		binary.LittleEndian.PutUint64(b[:], uint64(v))
		hs.Write(b[:])
	}
	img := make([]float32, c*h*w)
	buf := make([]byte, 4*len(img))
	for i := 0; i < ds.Len(); i++ {
		if err := ds.Image(img, i); err != nil {
			return "", fmt.Errorf("hash dataset: %w", err)
		}
		for k, v := range img {
			binary.LittleEndian.PutUint32(buf[4*k:], math.Float32bits(v))
		}
		hs.Write(buf)
	}
	return hex.EncodeToString(hs.Sum(nil)), nil
}

// TrainOptions configure Train. Zero values take the defaults noted.
type TrainOptions struct {
	Steps       int     // optimiser steps in total, counting resumed ones (required)
	BatchSize   int     // 16
	LR          float64 // Adam learning rate, 1e-3
	WarmupSteps int     // linear learning-rate warm-up, 0: none
	// DecayStart in (0, 1) decays the learning rate linearly to a tenth of
	// LR from that fraction of the run (of Steps, or of MaxDuration when
	// that runs out first) to its end. 0: constant.
	DecayStart float64
	Beta1      float64 // 0.9
	Beta2      float64 // 0.999
	AdamEps    float64 // 1e-8
	EMADecay   float64 // 0.999 (ramped up over the first steps)
	ClipNorm   float64 // global gradient-norm clip, 1; negative disables
	NoFlip     bool    // disable random horizontal/vertical flips
	// CropRows×CropCols > 0 trains on random windows of that size (the
	// network's size; the data may be larger), each resampled at a pixel
	// scale drawn from Scales (default {1}); validation uses centre crops.
	CropRows, CropCols int
	Scales             []float64
	Seed               uint64
	// Validation images; when nil, ValFraction of the data (chosen by the
	// seed) is held out instead. Validation loss is computed with the EMA
	// weights at fixed noise, so epochs compare.
	Validation  Dataset
	ValFraction float64
	// StepsPerEpoch sets how often the epoch loss and validation loss are
	// reported (default: one pass over the training images); batches always
	// walk a fresh permutation of the data per pass.
	StepsPerEpoch int
	MaxDuration   time.Duration // stop early (still saving) after this long; 0: no limit

	CheckpointPath  string // written every CheckpointEvery steps and at the end
	CheckpointEvery int
	Resume          string // training checkpoint to continue from

	// Provenance recorded in checkpoints.
	DataDescription string
	EMLap           int
	Normalisation   Normalisation
}

func (o *TrainOptions) defaults() error {
	if o.Steps <= 0 {
		return fmt.Errorf("train: %d steps", o.Steps)
	}
	def := func(v *float64, d float64) {
		if *v == 0 {
			*v = d
		}
	}
	if o.BatchSize == 0 {
		o.BatchSize = 16
	}
	def(&o.LR, 1e-3)
	def(&o.Beta1, 0.9)
	def(&o.Beta2, 0.999)
	def(&o.AdamEps, 1e-8)
	def(&o.EMADecay, 0.999)
	def(&o.ClipNorm, 1)
	switch {
	case o.BatchSize < 1 || o.BatchSize > 4096:
		return fmt.Errorf("train: batch size %d", o.BatchSize)
	case !(o.LR > 0) || !(o.Beta1 >= 0 && o.Beta1 < 1) || !(o.Beta2 >= 0 && o.Beta2 < 1) || !(o.AdamEps > 0):
		return fmt.Errorf("train: Adam lr %g, betas %g %g, eps %g", o.LR, o.Beta1, o.Beta2, o.AdamEps)
	case !(o.EMADecay >= 0 && o.EMADecay < 1):
		return fmt.Errorf("train: EMA decay %g", o.EMADecay)
	case !(o.ValFraction >= 0 && o.ValFraction < 1):
		return fmt.Errorf("train: validation fraction %g", o.ValFraction)
	case o.WarmupSteps < 0 || o.StepsPerEpoch < 0 || o.CheckpointEvery < 0:
		return errors.New("train: negative step count")
	case !(o.DecayStart >= 0 && o.DecayStart < 1):
		return fmt.Errorf("train: decay start %g", o.DecayStart)
	case math.IsNaN(o.ClipNorm):
		return errors.New("train: NaN clip norm")
	}
	return nil
}

// TrainStats summarise a Train call.
type TrainStats struct {
	Steps     int           // total optimiser steps after the call
	Epochs    int           // epochs completed during the call
	Loss      []float64     // mean training loss of each epoch completed in the call
	ValLoss   []float64     // validation loss (EMA weights) after each of those epochs
	LastLoss  float64       // loss of the final step
	Duration  time.Duration // wall time of the call
	TimedOut  bool          // stopped by MaxDuration before Steps
	DataHash  string
	TrainSize int
	ValSize   int
}

// trainState is what a training checkpoint adds to the weights.
type trainState struct {
	Step      int            `json:"step"`
	Seed      uint64         `json:"seed"`
	BatchSize int            `json:"batch_size"`
	TrainIdx  []int          `json:"train_indices"`
	DataHash  string         `json:"data_hash"`
	Options   map[string]any `json:"options"`
}

type trainer struct {
	u         *UNet
	be        nn.Backend
	opt       TrainOptions
	data      Dataset
	trainIdx  []int
	val       Dataset
	valIdx    []int
	ema, m, v []nn.Buffer
	tmp       []nn.Buffer
	step      int
	stepRNG   *rand.PCG // reseeded from (seed, step) every step
	rng       *rand.Rand
	permPCG   *rand.PCG // reseeded from (seed, pass) for each pass's permutation
	permRNG   *rand.Rand
	perm      []int
	permEpoch int
	per       int
	x0, xt    []float32
	sig       []float32
	img       []float32
	dataHash  string
	frac      float64 // fraction of the run done, for the learning-rate decay
}

// Train fits the network to data by denoising score matching on the VE
// diffusion: σ = Sigma(t) with t ~ Beta(3,3), loss λ(σ)·‖d(x+σz, σ) − x‖²
// with λ = 1/σ² + 1 (the EDM weighting for unit data scale), Adam, global
// gradient-norm clipping, an exponential moving average of the weights and
// random flips. It is deterministic given the seed (and resumable exactly
// from a checkpoint). On success the network holds the EMA weights (on an
// error, the raw weights of the last step). progress,
// when not nil, receives a progress bar (use os.Stderr).
func Train(ctx context.Context, u *UNet, data Dataset, opt TrainOptions, progress io.Writer) (st TrainStats, err error) {
	start := time.Now()
	if err := opt.defaults(); err != nil {
		return st, err
	}
	c, h, w := u.Shape()
	src := data
	if opt.CropRows > 0 || opt.CropCols > 0 {
		if data, err = cropped(data, opt); err != nil {
			return st, err
		}
		if opt.Validation != nil {
			if opt.Validation, err = cropped(opt.Validation, opt); err != nil {
				return st, err
			}
		}
	}
	if dc, dh, dw := data.Shape(); dc != c || dh != h || dw != w {
		return st, fmt.Errorf("train: data images are %d×%d×%d, the network's %d×%d×%d", dc, dh, dw, c, h, w)
	}
	if data.Len() < 1 {
		return st, errors.New("train: no training images")
	}
	t := &trainer{u: u, be: u.be, opt: opt, data: data, per: c * h * w, permEpoch: -1}
	hash, err := HashDataset(src)
	if err != nil {
		return st, fmt.Errorf("train: %w", err)
	}
	t.dataHash, st.DataHash = hash, hash
	t.split()
	if opt.Validation != nil {
		if vc, vh, vw := opt.Validation.Shape(); vc != c || vh != h || vw != w {
			return st, fmt.Errorf("train: validation images are %d×%d×%d, the network's %d×%d×%d", vc, vh, vw, c, h, w)
		}
		t.val = opt.Validation
		t.valIdx = make([]int, opt.Validation.Len())
		for i := range t.valIdx {
			t.valIdx[i] = i
		}
	}
	st.TrainSize, st.ValSize = len(t.trainIdx), len(t.valIdx)
	if len(t.trainIdx) == 0 {
		return st, errors.New("train: validation split leaves no training images")
	}
	t.alloc()
	if opt.Resume != "" {
		if err := t.resume(opt.Resume); err != nil {
			return st, err
		}
	}
	spe := opt.StepsPerEpoch
	if spe == 0 {
		spe = max(1, (len(t.trainIdx)+opt.BatchSize-1)/opt.BatchSize)
	}
	var bar *progressbar.ProgressBar
	if progress != nil {
		total := opt.Steps
		if opt.MaxDuration > 0 {
			total = -1 // bounded by time: a spinner with the step count
		}
		bar = progressbar.NewOptions(total, progressbar.OptionSetWriter(progress),
			progressbar.OptionSetDescription("train"), progressbar.OptionShowCount(), progressbar.OptionShowIts(),
			progressbar.OptionSetItsString("step"), progressbar.OptionThrottle(200*time.Millisecond),
			progressbar.OptionSetPredictTime(true), progressbar.OptionSetWidth(30))
		_ = bar.Set(t.step)
	}
	defer func() { st.Steps, st.Duration = t.step, time.Since(start) }()
	var epochLoss float64
	var epochSteps int
	var epochNote string
	for t.step < opt.Steps {
		if err := ctx.Err(); err != nil {
			return st, err
		}
		if opt.MaxDuration > 0 && time.Since(start) > opt.MaxDuration {
			st.TimedOut = true
			break
		}
		t.frac = float64(t.step) / float64(opt.Steps)
		if opt.MaxDuration > 0 {
			t.frac = math.Max(t.frac, float64(time.Since(start))/float64(opt.MaxDuration))
		}
		loss, err := t.trainStep()
		if err != nil {
			return st, err
		}
		st.LastLoss = loss
		epochLoss += loss
		epochSteps++
		if bar != nil {
			bar.Describe(fmt.Sprintf("loss %.4f%s", loss, epochNote))
			_ = bar.Add(1)
		}
		if t.step%spe == 0 {
			st.Loss = append(st.Loss, epochLoss/float64(epochSteps))
			epochLoss, epochSteps = 0, 0
			st.Epochs++
			if len(t.valIdx) > 0 {
				vl, err := t.validate()
				if err != nil {
					return st, err
				}
				st.ValLoss = append(st.ValLoss, vl)
				epochNote = fmt.Sprintf(" | epoch %d: loss %.4f, validation %.4f", t.step/spe, st.Loss[len(st.Loss)-1], vl)
			}
		}
		if opt.CheckpointPath != "" && opt.CheckpointEvery > 0 && t.step%opt.CheckpointEvery == 0 && t.step < opt.Steps {
			if err := t.checkpoint(opt.CheckpointPath); err != nil {
				return st, err
			}
		}
	}
	if bar != nil {
		_ = bar.Finish()
		fmt.Fprintln(progress)
	}
	if opt.CheckpointPath != "" {
		if err := t.checkpoint(opt.CheckpointPath); err != nil {
			return st, err
		}
	}
	t.swapEMA() // the network keeps the EMA weights
	return st, nil
}

// split holds out ValFraction of the data, chosen by the seed.
func (t *trainer) split() {
	n := t.data.Len()
	idx := make([]int, n)
	for i := range idx {
		idx[i] = i
	}
	nv := 0
	if t.opt.Validation == nil && t.opt.ValFraction > 0 {
		nv = int(math.Round(t.opt.ValFraction * float64(n)))
		r := rand.New(rand.NewPCG(t.opt.Seed, 0x76616c))
		r.Shuffle(n, func(i, j int) { idx[i], idx[j] = idx[j], idx[i] })
		t.val = t.data
		t.valIdx = append([]int(nil), idx[:nv]...)
	}
	t.trainIdx = append([]int(nil), idx[nv:]...)
}

func (t *trainer) alloc() {
	ps := t.u.Params()
	for _, p := range ps {
		e := t.be.Alloc(p.Len())
		t.be.Copy(e, p.Value)
		t.ema = append(t.ema, e)
		t.m = append(t.m, t.be.Alloc(p.Len()))
		t.v = append(t.v, t.be.Alloc(p.Len()))
		t.tmp = append(t.tmp, t.be.Alloc(p.Len()))
	}
	b := t.opt.BatchSize
	t.x0 = make([]float32, b*t.per)
	t.xt = make([]float32, b*t.per)
	t.sig = make([]float32, b)
	t.img = make([]float32, t.per)
	t.stepRNG = rand.NewPCG(0, 0)
	t.rng = rand.New(t.stepRNG)
	t.permPCG = rand.NewPCG(0, 0)
	t.permRNG = rand.New(t.permPCG)
}

// swapEMA exchanges the network's weights with the EMA copies.
func (t *trainer) swapEMA() {
	for i, p := range t.u.Params() {
		t.be.Copy(t.tmp[i], p.Value)
		t.be.Copy(p.Value, t.ema[i])
		t.be.Copy(t.ema[i], t.tmp[i])
	}
}

// beta33 draws t ~ Beta(3,3) as the median of five uniforms.
func beta33(r *rand.Rand) float64 {
	var u [5]float64
	for i := range u {
		u[i] = r.Float64()
	}
	for i := 1; i < 5; i++ {
		for j := i; j > 0 && u[j] < u[j-1]; j-- {
			u[j], u[j-1] = u[j-1], u[j]
		}
	}
	return u[2]
}

// flip reverses rows and/or columns of a [c][h][w] image in place.
func flip(img []float32, c, h, w int, rows, cols bool) {
	for ch := 0; ch < c; ch++ {
		p := img[ch*h*w : (ch+1)*h*w]
		if cols {
			for r := 0; r < h; r++ {
				row := p[r*w : (r+1)*w]
				for i, j := 0, w-1; i < j; i, j = i+1, j-1 {
					row[i], row[j] = row[j], row[i]
				}
			}
		}
		if rows {
			for i, j := 0, h-1; i < j; i, j = i+1, j-1 {
				for k := 0; k < w; k++ {
					p[i*w+k], p[j*w+k] = p[j*w+k], p[i*w+k]
				}
			}
		}
	}
}

// batchIndices returns the dataset indices of the current step's batch: a
// per-epoch permutation derived from (seed, epoch), walked in order, so any
// step's batch depends only on the seed and the step number.
func (t *trainer) batchIndex(j int) int {
	n := len(t.trainIdx)
	b := t.opt.BatchSize
	spe := (n + b - 1) / b
	epoch, pos := t.step/spe, t.step%spe
	if epoch != t.permEpoch {
		if t.perm == nil {
			t.perm = make([]int, n)
		}
		copy(t.perm, t.trainIdx)
		t.permPCG.Seed(t.opt.Seed^0x7065726d, uint64(epoch))
		perm := t.perm
		t.permRNG.Shuffle(n, func(i, k int) { perm[i], perm[k] = perm[k], perm[i] })
		t.permEpoch = epoch
	}
	return t.perm[(pos*b+j)%n]
}

// trainStep does one optimiser step and returns the batch loss.
func (t *trainer) trainStep() (float64, error) {
	u, be, opt := t.u, t.be, t.opt
	b, per := opt.BatchSize, t.per
	c, h, w := u.Shape()
	t.stepRNG.Seed(opt.Seed, uint64(t.step)+1)
	r := t.rng
	for j := 0; j < b; j++ {
		if err := t.image(t.img, t.batchIndex(j), r); err != nil {
			return 0, fmt.Errorf("train: %w", err)
		}
		if !opt.NoFlip {
			flip(t.img, c, h, w, r.IntN(2) == 1, r.IntN(2) == 1)
		}
		copy(t.x0[j*per:], t.img)
		s := Sigma(beta33(r))
		t.sig[j] = float32(s)
		for k := j * per; k < (j+1)*per; k++ {
			t.xt[k] = t.x0[k] + float32(s*r.NormFloat64())
		}
	}
	ug, err := u.graph(b)
	if err != nil {
		return 0, err
	}
	if err := u.forward(ug, nil, t.xt, t.sig); err != nil {
		return 0, err
	}
	loss := t.lossGrad(ug, ug.hostGrad, b)
	if math.IsNaN(loss) || math.IsInf(loss, 0) {
		return 0, fmt.Errorf("train: loss is %g at step %d", loss, t.step)
	}
	ps := u.Params()
	for _, p := range ps {
		be.Fill(p.Grad, 0)
	}
	be.Upload(ug.seed, ug.hostGrad)
	if err := ug.g.Backward(ug.out, ug.seed, true); err != nil {
		return 0, err
	}
	var sq float64
	for _, p := range ps {
		sq += be.Dot(p.Grad, p.Grad)
	}
	gscale := float32(1)
	if norm := math.Sqrt(sq); opt.ClipNorm > 0 && norm > opt.ClipNorm {
		gscale = float32(opt.ClipNorm / norm)
	}
	t.step++
	lr := opt.LR
	if opt.WarmupSteps > 0 && t.step < opt.WarmupSteps {
		lr *= float64(t.step) / float64(opt.WarmupSteps)
	}
	if d := opt.DecayStart; d > 0 && t.frac > d {
		lr *= 1 - 0.9*math.Min(1, (t.frac-d)/(1-d))
	}
	bc1 := float32(1 - math.Pow(opt.Beta1, float64(t.step)))
	bc2 := float32(1 - math.Pow(opt.Beta2, float64(t.step)))
	decay := math.Min(opt.EMADecay, float64(1+t.step)/float64(10+t.step))
	for i, p := range ps {
		if gscale != 1 {
			be.Axpby(p.Grad, 0, p.Grad, gscale)
		}
		be.Adam(p.Value, p.Grad, t.m[i], t.v[i], float32(lr), float32(opt.Beta1), float32(opt.Beta2), float32(opt.AdamEps), bc1, bc2)
		be.Axpby(t.ema[i], float32(1-decay), p.Value, float32(decay))
	}
	return loss, nil
}

// lossGrad computes the weighted loss of the network output in ug.hostIn
// against t.x0 at t.xt, t.sig, and writes its gradient with respect to the
// output F into grad. With D = c_skip·x_t + c_out·F, λ·(D−x)² = (F − F*)²
// for the target F* = (x − c_skip·x_t)/c_out, since λ·c_out² = 1.
// Only the first b images count.
func (t *trainer) lossGrad(ug *unetGraph, grad []float32, b int) float64 {
	per := t.per
	var total float64
	for j := 0; j < b; j++ {
		cSkip, cOut, _, _ := Precond(float64(t.sig[j]))
		var s float64
		for k := j * per; k < (j+1)*per; k++ {
			target := (float64(t.x0[k]) - cSkip*float64(t.xt[k])) / cOut
			d := float64(ug.hostIn[k]) - target
			s += d * d
			grad[k] = float32(2 * d / float64(per*b))
		}
		total += s / float64(per)
	}
	return total / float64(b)
}

// valLevels are the noise levels of the validation loss: Beta(3,3) deciles.
var valLevels = []float64{0.2466, 0.3407, 0.4074, 0.4603, 0.5, 0.5397, 0.5926, 0.6593, 0.7534}

// validate returns the mean weighted loss of the EMA weights on the
// validation images, at fixed noise levels and fixed noise.
func (t *trainer) validate() (float64, error) {
	t.swapEMA()
	defer t.swapEMA()
	b, per := t.opt.BatchSize, t.per
	ug, err := t.u.graph(b)
	if err != nil {
		return 0, err
	}
	r := rand.New(rand.NewPCG(t.opt.Seed, 0x76616c6e))
	var total float64
	var count int
	items := len(t.valIdx) * len(valLevels)
	for lo := 0; lo < items; lo += b {
		m := min(b, items-lo)
		for j := 0; j < b; j++ {
			it := lo + min(j, m-1) // pad a short last batch by repeating its last item
			if err := t.val.Image(t.img, t.valIdx[it/len(valLevels)]); err != nil {
				return 0, fmt.Errorf("validate: %w", err)
			}
			copy(t.x0[j*per:], t.img)
			t.sig[j] = float32(Sigma(valLevels[it%len(valLevels)]))
		}
		for k := range t.xt {
			j := k / per
			t.xt[k] = t.x0[k] + t.sig[j]*float32(r.NormFloat64())
		}
		if err := t.u.forward(ug, nil, t.xt, t.sig); err != nil {
			return 0, err
		}
		total += t.lossGrad(ug, ug.hostGrad, m) * float64(m)
		count += m
	}
	return total / float64(count), nil
}

func (t *trainer) state() trainState {
	o := t.opt
	return trainState{Step: t.step, Seed: o.Seed, BatchSize: o.BatchSize, TrainIdx: t.trainIdx, DataHash: t.dataHash,
		Options: map[string]any{"lr": o.LR, "warmup": o.WarmupSteps, "decay_start": o.DecayStart, "beta1": o.Beta1, "beta2": o.Beta2,
			"adam_eps": o.AdamEps, "ema_decay": o.EMADecay, "clip_norm": o.ClipNorm, "flip": !o.NoFlip,
			"crop": fmt.Sprintf("%d×%d at scales %v", o.CropRows, o.CropCols, o.Scales)}}
}

// checkpoint writes the EMA weights as the model plus the training state.
func (t *trainer) checkpoint(path string) error {
	var extra []ckptTensor
	ps := t.u.Params()
	for i, p := range ps {
		for _, kv := range []struct {
			prefix string
			buf    nn.Buffer
		}{{"train.weights.", p.Value}, {"train.adam_m.", t.m[i]}, {"train.adam_v.", t.v[i]}} {
			d := make([]float32, p.Len())
			t.be.Download(d, kv.buf)
			extra = append(extra, ckptTensor{name: kv.prefix + p.Name, shape: append([]int(nil), p.Shape...), data: d})
		}
	}
	stj, err := json.Marshal(t.state())
	if err != nil {
		return err
	}
	meta := CheckpointMeta{Normalisation: t.opt.Normalisation, Provenance: Provenance{
		Data: t.opt.DataDescription, DataHash: t.dataHash, Images: len(t.trainIdx), Steps: t.step,
		EMLap: t.opt.EMLap, CodeVersion: CodeVersion(), Seed: t.opt.Seed}}
	t.swapEMA()
	defer t.swapEMA()
	return t.u.save(path, meta, extra, map[string]string{"train_state": string(stj)})
}

// resume loads weights, EMA, Adam moments and the step count from a
// training checkpoint written by the same architecture and data.
func (t *trainer) resume(path string) error {
	ts, md, err := readSafetensorsFile(path)
	if err != nil {
		return fmt.Errorf("resume: %w", err)
	}
	if _, err := t.u.checkMeta(md); err != nil {
		return fmt.Errorf("resume from %s: %w", path, err)
	}
	sj, ok := md["train_state"]
	if !ok {
		return fmt.Errorf("resume from %s: %w", path, errCkptNoTrainState)
	}
	var s trainState
	if err := json.Unmarshal([]byte(sj), &s); err != nil {
		return fmt.Errorf("resume from %s: training state: %w", path, err)
	}
	switch {
	case s.DataHash != t.dataHash:
		return fmt.Errorf("resume from %s: the checkpoint was trained on other data (hash %s, now %s)", path, s.DataHash, t.dataHash)
	case s.Seed != t.opt.Seed || s.BatchSize != t.opt.BatchSize:
		return fmt.Errorf("resume from %s: seed %d, batch %d in the checkpoint; %d, %d now", path, s.Seed, s.BatchSize, t.opt.Seed, t.opt.BatchSize)
	case s.Step < 0 || s.Step > t.opt.Steps:
		return fmt.Errorf("resume from %s: checkpoint is at step %d of %d", path, s.Step, t.opt.Steps)
	case !slices.Equal(s.TrainIdx, t.trainIdx):
		return fmt.Errorf("resume from %s: the training/validation split differs from the checkpoint's", path)
	}
	for _, p := range t.u.Params() {
		for _, prefix := range []string{"train.adam_m.", "train.adam_v.", "train.weights."} {
			if tt, ok := ts[prefix+p.Name]; !ok || !slices.Equal(tt.shape, p.Shape) {
				return fmt.Errorf("resume from %s: tensor %q missing or mis-shaped", path, prefix+p.Name)
			}
		}
	}
	// Model tensors are the EMA weights; train.weights.* the raw ones.
	if err := t.u.setWeights(ts); err != nil {
		return fmt.Errorf("resume from %s: %w", path, err)
	}
	for i, p := range t.u.Params() {
		t.be.Copy(t.ema[i], p.Value)
	}
	for i, p := range t.u.Params() {
		for _, kv := range []struct {
			prefix string
			buf    nn.Buffer
		}{{"train.adam_m.", t.m[i]}, {"train.adam_v.", t.v[i]}, {"train.weights.", p.Value}} {
			t.be.Upload(kv.buf, ts[kv.prefix+p.Name].data)
		}
	}
	t.step = s.Step
	return nil
}
