package priors

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"math/rand/v2"
	"os"
	"slices"
	"time"

	"github.com/schollz/progressbar/v3"

	"github.com/kspaced/kspaced/priors/nn"
)

// ProbeDiag writes the unbiased one-probe estimate σ_i²·(v ⊙ Jᵀv) of
// diag Cov[x | x_t] into dst, given vjp from d.DenoiseVJP at (x_t, σ) and a
// Rademacher probe v (entries ±1): E_v[v_k (Jᵀv)_k] = J_kk. scratch holds
// Jᵀv (len(v)).
func ProbeDiag(dst, scratch []float32, vjp func(dst, v []float32) error, v, sigma []float32) error {
	if len(dst) != len(v) || len(scratch) != len(v) || len(sigma) == 0 || len(v)%len(sigma) != 0 {
		return fmt.Errorf("probe diagonal: %d, %d and %d values for %d images", len(dst), len(scratch), len(v), len(sigma))
	}
	if err := vjp(scratch, v); err != nil {
		return err
	}
	per := len(v) / len(sigma)
	for k := range v {
		s := float64(sigma[k/per])
		dst[k] = float32(s * s * float64(v[k]) * float64(scratch[k]))
	}
	return nil
}

// CovTrainOptions configure FitCovariance; zero values take the defaults noted.
type CovTrainOptions struct {
	Steps     int     // optimiser steps in total, counting resumed ones (required)
	BatchSize int     // 4
	LR        float64 // Adam learning rate, 1e-3, decayed linearly to a tenth over the second half
	EMADecay  float64 // 0.99
	Seed      uint64
	// CropRows×CropCols > 0 trains on random windows of the data (the
	// denoiser and head run at that size: both are convolutional).
	CropRows, CropCols int
	// OutPath receives the prior (PriorPath) with the head every
	// CheckpointEvery steps (with the training state, so a run resumes
	// from it) and at the end (weights only). Both empty: nothing is saved.
	PriorPath, OutPath string
	CheckpointEvery    int
	MaxDuration        time.Duration // stop early (saving, resumable) after this long
	DataDescription    string

	stopAt int // tests: stop (saving, resumable) after this step
}

// CovTrainStats summarise a FitCovariance call.
type CovTrainStats struct {
	Steps       int     // total steps after the call
	ResumedFrom int     // step the call started at
	Loss        float64 // mean normalised loss of the last 10 % of the call's steps
	Duration    time.Duration
	TimedOut    bool
}

type covTrainState struct {
	Step      int    `json:"step"`
	Seed      uint64 `json:"seed"`
	BatchSize int    `json:"batch_size"`
	Crop      [2]int `json:"crop"`
	DataHash  string `json:"data_hash"`
}

// FitCovariance trains the head h of the frozen denoiser d on images of
// data (prior space) by regression on the probe estimate (OCM, papers/001):
// per step a batch x_t = x + σ z with t ~ U(0, 1) (the sampler's grid is
// uniform in t), one batched VJP of d with a Rademacher probe, and the loss
// ‖(c − σ²·v ⊙ Jᵀv)/s(σ)‖², s = σ²/(σ²+1), whose minimiser is the true
// diagonal (the weight s⁻² only balances the noise levels). Adam, gradient
// clipping at norm 1, EMA weights kept at the end. Deterministic per seed;
// resumes from opt.OutPath when it holds a training state for the same data
// (a finished file there is replaced).
func FitCovariance(ctx context.Context, d Denoiser, h *CovHead, data Dataset, opt CovTrainOptions, progress io.Writer) (st CovTrainStats, err error) {
	start := time.Now()
	if opt.Steps < 1 || (opt.PriorPath == "") != (opt.OutPath == "") {
		return st, errors.New("fit covariance: need Steps, and PriorPath with OutPath (or neither)")
	}
	if opt.BatchSize == 0 {
		opt.BatchSize = 4
	}
	if opt.LR == 0 {
		opt.LR = 1e-3
	}
	if opt.EMADecay == 0 {
		opt.EMADecay = 0.99
	}
	c, rows, cols := data.Shape()
	if dc, _, _ := d.Shape(); dc != c {
		return st, fmt.Errorf("fit covariance: data has %d channels, the prior %d", c, dc)
	}
	if data.Len() < 1 {
		return st, errors.New("fit covariance: no training images")
	}
	cr, cc := rows, cols
	if opt.CropRows > 0 || opt.CropCols > 0 {
		cr, cc = opt.CropRows, opt.CropCols
		if cr < 1 || cc < 1 || cr > rows || cc > cols {
			return st, fmt.Errorf("fit covariance: crop %d×%d of %d×%d images", cr, cc, rows, cols)
		}
	}
	dd, err := ForSize(d, cr, cc)
	if err != nil {
		return st, fmt.Errorf("fit covariance: %w", err)
	}
	hv, err := h.atSize(cr, cc)
	if err != nil {
		return st, fmt.Errorf("fit covariance: %w", err)
	}
	hash, err := HashDataset(data)
	if err != nil {
		return st, fmt.Errorf("fit covariance: %w", err)
	}
	b, per := opt.BatchSize, c*cr*cc
	u, be := hv.net, hv.net.be
	ps := u.Params()
	ema, m, v, tmp := make([]nn.Buffer, len(ps)), make([]nn.Buffer, len(ps)), make([]nn.Buffer, len(ps)), make([]nn.Buffer, len(ps))
	for i, p := range ps {
		ema[i], m[i], v[i], tmp[i] = be.Alloc(p.Len()), be.Alloc(p.Len()), be.Alloc(p.Len()), be.Alloc(p.Len())
		be.Copy(ema[i], p.Value)
	}
	state := covTrainState{Seed: opt.Seed, BatchSize: b, Crop: [2]int{cr, cc}, DataHash: hash}
	if opt.OutPath != "" {
		if err := covResume(opt.OutPath, &state, u, ema, m, v); err != nil {
			return st, err
		}
	}
	st.ResumedFrom = state.Step
	swap := func() {
		for i, p := range ps {
			be.Copy(tmp[i], p.Value)
			be.Copy(p.Value, ema[i])
			be.Copy(ema[i], tmp[i])
		}
	}
	save := func(final bool) error {
		if opt.OutPath == "" {
			return nil
		}
		prov := Provenance{Data: opt.DataDescription, DataHash: hash, Images: data.Len(), Steps: state.Step, Seed: opt.Seed,
			Crops: fmt.Sprintf("%d×%d", cr, cc)}
		var extra []ckptTensor
		var md map[string]string
		if !final {
			for i, p := range ps {
				for _, kv := range []struct {
					prefix string
					buf    nn.Buffer
				}{{"weights.", p.Value}, {"adam_m.", m[i]}, {"adam_v.", v[i]}} {
					x := make([]float32, p.Len())
					be.Download(x, kv.buf)
					extra = append(extra, ckptTensor{name: covTrainPrefix + kv.prefix + p.Name, shape: slices.Clone(p.Shape), data: x})
				}
			}
			sj, err := json.Marshal(state)
			if err != nil {
				return err
			}
			md = map[string]string{covStateKey: string(sj)}
		}
		swap() // the model tensors are the EMA weights
		defer swap()
		return SaveCovariance(opt.PriorPath, opt.OutPath, h, prov, extra, md)
	}

	rng := rand.New(rand.NewPCG(0, 0))
	img := make([]float32, c*rows*cols)
	x0, xt := make([]float32, b*per), make([]float32, b*per)
	dh, probe, jv, target := make([]float32, b*per), make([]float32, b*per), make([]float32, b*per), make([]float32, b*per)
	sig := make([]float32, b)
	ug, err := u.graph(b)
	if err != nil {
		return st, err
	}
	var bar *progressbar.ProgressBar
	if progress != nil {
		bar = progressbar.NewOptions(opt.Steps, progressbar.OptionSetWriter(progress),
			progressbar.OptionSetDescription("fit covariance"), progressbar.OptionShowCount(), progressbar.OptionShowIts(),
			progressbar.OptionSetItsString("step"), progressbar.OptionThrottle(500*time.Millisecond),
			progressbar.OptionSetPredictTime(true), progressbar.OptionSetWidth(30))
		_ = bar.Set(state.Step)
	}
	var tail []float64
	for state.Step < opt.Steps {
		if err := ctx.Err(); err != nil {
			return st, err
		}
		if (opt.MaxDuration > 0 && time.Since(start) > opt.MaxDuration) || (opt.stopAt > 0 && state.Step >= opt.stopAt) {
			st.TimedOut = true
			break
		}
		rng = rand.New(rand.NewPCG(opt.Seed, uint64(state.Step)+1))
		for j := range b {
			if err := data.Image(img, rng.IntN(data.Len())); err != nil {
				return st, fmt.Errorf("fit covariance: %w", err)
			}
			r0, c0 := rng.IntN(rows-cr+1), rng.IntN(cols-cc+1)
			for ch := range c {
				for r := range cr {
					copy(x0[j*per+(ch*cr+r)*cc:j*per+(ch*cr+r+1)*cc], img[(ch*rows+r0+r)*cols+c0:])
				}
			}
			flip(x0[j*per:(j+1)*per], c, cr, cc, rng.IntN(2) == 1, rng.IntN(2) == 1)
			s := Sigma(rng.Float64())
			sig[j] = float32(s)
			for k := j * per; k < (j+1)*per; k++ {
				xt[k] = x0[k] + float32(s*rng.NormFloat64())
				probe[k] = float32(2*rng.IntN(2) - 1)
			}
		}
		vjp, err := dd.DenoiseVJP(dh, xt, sig)
		if err != nil {
			return st, fmt.Errorf("fit covariance: %w", err)
		}
		if err := ProbeDiag(target, jv, vjp, probe, sig); err != nil {
			return st, fmt.Errorf("fit covariance: %w", err)
		}
		if err := u.forward(ug, nil, xt, sig); err != nil {
			return st, err
		}
		var loss float64
		for j := range b {
			s2 := float64(sig[j]) * float64(sig[j])
			inv := (s2 + 1) / s2
			for k := j * per; k < (j+1)*per; k++ {
				f := float64(ug.hostIn[k])
				e := math.Exp(math.Max(-maxLogCov, math.Min(maxLogCov, f)))
				r := e - float64(target[k])*inv
				loss += r * r
				g := 2 * r * e / float64(b*per)
				if f < -maxLogCov || f > maxLogCov {
					g = 0
				}
				ug.hostGrad[k] = float32(g)
			}
		}
		loss /= float64(b * per)
		if math.IsNaN(loss) || math.IsInf(loss, 0) {
			return st, fmt.Errorf("fit covariance: loss is %g at step %d", loss, state.Step)
		}
		for _, p := range ps {
			be.Fill(p.Grad, 0)
		}
		be.Upload(ug.seed, ug.hostGrad)
		if err := ug.g.Backward(ug.out, ug.seed, true); err != nil {
			return st, err
		}
		var sq float64
		for _, p := range ps {
			sq += be.Dot(p.Grad, p.Grad)
		}
		gs := float32(1)
		if n := math.Sqrt(sq); n > 1 {
			gs = float32(1 / n)
		}
		state.Step++
		lr := opt.LR
		if frac := float64(state.Step) / float64(opt.Steps); frac > 0.5 {
			lr *= 1 - 0.9*(frac-0.5)/0.5
		}
		bc1 := float32(1 - math.Pow(0.9, float64(state.Step)))
		bc2 := float32(1 - math.Pow(0.999, float64(state.Step)))
		decay := math.Min(opt.EMADecay, float64(1+state.Step)/float64(10+state.Step))
		for i, p := range ps {
			if gs != 1 {
				be.Axpby(p.Grad, 0, p.Grad, gs)
			}
			be.Adam(p.Value, p.Grad, m[i], v[i], float32(lr), 0.9, 0.999, 1e-8, bc1, bc2)
			be.Axpby(ema[i], float32(1-decay), p.Value, float32(decay))
		}
		tail = append(tail, loss)
		if bar != nil {
			bar.Describe(fmt.Sprintf("fit covariance: loss %.4f", loss))
			_ = bar.Add(1)
		}
		if opt.CheckpointEvery > 0 && state.Step%opt.CheckpointEvery == 0 && state.Step < opt.Steps {
			if err := save(false); err != nil {
				return st, err
			}
		}
	}
	if bar != nil {
		_ = bar.Finish()
		fmt.Fprintln(progress)
	}
	st.Steps, st.Duration = state.Step, time.Since(start)
	if n := len(tail); n > 0 {
		k := max(1, n/10)
		for _, l := range tail[n-k:] {
			st.Loss += l / float64(k)
		}
	}
	if err := save(state.Step >= opt.Steps); err != nil {
		return st, err
	}
	swap() // the head keeps the EMA weights
	return st, nil
}

// covResume loads a training state from path into the head when path holds
// one for the same run; a missing file or one without a state starts fresh.
func covResume(path string, state *covTrainState, u *UNet, ema, m, v []nn.Buffer) error {
	if _, err := os.Stat(path); errors.Is(err, os.ErrNotExist) {
		return nil
	}
	ts, md, err := readSafetensorsFile(path)
	if err != nil {
		return fmt.Errorf("fit covariance: resume: %w", err)
	}
	sj, ok := md[covStateKey]
	if !ok {
		return nil // a finished head (or a plain prior): train afresh and replace it
	}
	var s covTrainState
	if err := json.Unmarshal([]byte(sj), &s); err != nil {
		return fmt.Errorf("fit covariance: resume from %s: %w", path, err)
	}
	if s.Seed != state.Seed || s.BatchSize != state.BatchSize || s.Crop != state.Crop || s.DataHash != state.DataHash {
		return fmt.Errorf("fit covariance: %s was written by another run (seed, batch, crop or data differ): choose another output or remove it", path)
	}
	be := u.be
	for i, p := range u.Params() {
		for _, kv := range []struct {
			name string
			buf  nn.Buffer
		}{{covPrefix + p.Name, ema[i]}, {covTrainPrefix + "weights." + p.Name, p.Value}, {covTrainPrefix + "adam_m." + p.Name, m[i]}, {covTrainPrefix + "adam_v." + p.Name, v[i]}} {
			t, ok := ts[kv.name]
			if !ok || !slices.Equal(t.shape, p.Shape) {
				return fmt.Errorf("fit covariance: resume from %s: tensor %q missing or mis-shaped", path, kv.name)
			}
			be.Upload(kv.buf, t.data)
		}
	}
	state.Step = s.Step
	return nil
}
