package retrain

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"time"

	"github.com/schollz/progressbar/v3"

	"github.com/kspaced/kspaced/internal/safefile"
	"github.com/kspaced/kspaced/posterior"
	"github.com/kspaced/kspaced/priors"
)

// RunEM learns a diffusion prior from corrupted observations only, by
// expectation-maximisation, in a run folder it can resume:
//
//   - lap 0 fits the Gaussian prior N(μ, D + UUᵀ) (FitGaussianEM) and saves
//     it as lap-00.safetensors (GaussianFormat); an interrupted fit resumes
//     from gaussian.partial.safetensors, written after every Gaussian lap;
//   - lap k ≥ 1 draws one posterior sample per training observation under
//     the prior of lap k−1 (E-step: exact for the Gaussian, MMPS for a
//     network), saves them (lap-NN.samples.safetensors), trains the network
//     on them warm-started from lap k−1 (M-step; Train's own checkpoint
//     lap-NN.train.safetensors lets a half-done M-step resume) and saves
//     lap-NN.safetensors (CheckpointFormat, provenance EMLap = k);
//   - after each lap the validation observations are reconstructed under the
//     new prior and scored, and the lap's record is appended to laps.json.
//
// Every file is written to a temporary name and renamed, so after a kill the
// next call continues from the last thing saved and recomputes nothing that
// was. run.json pins what a folder was made for (data, image size, network,
// rank, seed); a folder made for anything else is refused.

// EMOptions configure RunEM. Zero values take the defaults noted.
type EMOptions struct {
	Dir  string // run folder (created)
	Laps int    // network laps after the Gaussian lap 0 (0: the Gaussian lap alone)
	// Gaussian configures lap 0; RunEM sets its Init, FirstLap, AfterLap,
	// Workers and Progress.
	Gaussian GaussianEMOptions
	Network  priors.UNetConfig // the denoiser architecture (Channels 2, the observations' size)
	// Sampler configures MMPS for E-steps and evaluation: Method, Sampler,
	// Steps (32) and CGIter (2); the rest is set per observation.
	Sampler posterior.SampleOptions
	// EvalSamples is the number of posterior samples averaged per
	// validation observation for the lap's evidence (2).
	EvalSamples int
	// EvalSteps is the validation sampler's steps (0: Sampler.Steps); held
	// fixed, laps stay comparable when the E-step's steps change.
	EvalSteps int
	// Train configures each M-step: Steps per lap (required), BatchSize, LR,
	// WarmupSteps, EMADecay, ClipNorm, NoFlip. RunEM sets Seed, the
	// checkpoint paths, EMLap, Normalisation and DataDescription.
	Train   priors.TrainOptions
	Workers int // E-step goroutines (≤ 0: see EStep)
	// FirstLapSteps, when > 0, replaces Train.Steps for lap 1, whose network
	// starts from scratch.
	FirstLapSteps int
	// EStepParts is how many parts each E-step saves as it goes (default
	// 10): an interrupted E-step resumes after the last saved part.
	EStepParts int
	// SamplesPerObservation drawn by each E-step (1).
	SamplesPerObservation int
	Seed                  uint64
	// DataID identifies the observations (e.g. a hash of their files); a run
	// folder refuses to continue on other data.
	DataID string
	// AdoptData lets a run folder made on other observations of the same
	// shape (same counts, size, network and seed: e.g. the same archive
	// prewhitened by a newer noise estimate) continue on these: run.json
	// takes the new DataID and keeps the old one in earlier_data, and each
	// lap records the data it was fitted on.
	AdoptData       bool
	DataDescription string
	Normalisation   priors.Normalisation
	Progress        io.Writer // progress bars, e.g. os.Stderr (nil: none)
	Log             io.Writer // one summary line per lap and warnings (nil: none)
	Guard           GuardOptions
	// lrOverride, when set (tests), replaces the learning rate of an attempt.
	lrOverride func(lap, attempt int, lr float64) float64
}

// LapRecord is one lap's entry in laps.json.
type LapRecord struct {
	Lap        int       `json:"lap"`
	Kind       string    `json:"kind"`              // KindGaussian (lap 0) or KindUNet
	DataID     string    `json:"data_id,omitempty"` // the observations it was fitted on
	Checkpoint string    `json:"checkpoint"`
	Finished   time.Time `json:"finished"`
	// E-step: posterior samples drawn for this lap's M-step.
	EStepSeconds float64       `json:"estep_seconds,omitempty"`
	EStepSteps   int           `json:"estep_steps,omitempty"`
	EStepCGIter  int           `json:"estep_cg_iterations,omitempty"`
	EStepSamples int           `json:"estep_samples_per_observation,omitempty"`
	EStepResumed bool          `json:"estep_loaded,omitempty"` // samples came from a previous run
	MStepSeconds float64       `json:"mstep_seconds,omitempty"`
	MStepSteps   int           `json:"mstep_steps,omitempty"`
	MStepLoss    float64       `json:"mstep_loss,omitempty"` // mean loss of the last epoch
	MStepResumed bool          `json:"mstep_resumed,omitempty"`
	GaussianLaps []GaussianLap `json:"gaussian_laps,omitempty"`
	GaussSeconds float64       `json:"gaussian_seconds,omitempty"`
	Validation   ScoreSummary  `json:"validation"`
	// ValidationPSNR is each validation scan's PSNR (dB), in the same order
	// every lap, when all have truth: laps compare scan by scan (pairedPSNR).
	ValidationPSNR []float64 `json:"validation_psnr_per_scan,omitempty"`
	EvalSeconds    float64   `json:"eval_seconds"`
	EvalSteps      int       `json:"eval_steps,omitempty"` // the validation sampler's
	TrainImages    int       `json:"train_observations"`
	Workers        int       `json:"workers"`
	LapSeconds     float64   `json:"lap_seconds"` // this lap's compute in the call(s) that ran it
	// M-step guard (em_guard.go): every attempt, the learning rate kept.
	Attempts       []LapAttempt `json:"attempts,omitempty"`
	LR             float64      `json:"learning_rate,omitempty"`
	GuardWarning   string       `json:"guard_warning,omitempty"`
	Best           bool         `json:"best,omitempty"`                     // copied to best.safetensors
	WorseThanStart string       `json:"worse_than_lap_0_warning,omitempty"` // newest lap below lap 0
}

type emRun struct {
	Format   string            `json:"format"`
	DataID   string            `json:"data_id"`
	Train    int               `json:"train_observations"`
	Val      int               `json:"validation_observations"`
	Rows     int               `json:"rows"`
	Cols     int               `json:"cols"`
	Rank     int               `json:"rank"`
	GaussLap int               `json:"gaussian_laps"`
	Network  priors.UNetConfig `json:"network"`
	Seed     uint64            `json:"seed"`
	// Earlier is the data the folder's earlier laps were fitted on, oldest
	// first, when a run adopted new data (EMOptions.AdoptData).
	Earlier []EarlierData `json:"earlier_data,omitempty"`
}

// EarlierData is data a run adopted away from, and the last lap fitted on it.
type EarlierData struct {
	DataID  string `json:"data_id"`
	LastLap int    `json:"last_lap"`
}

const (
	emRunFormat     = "kspaced-em-run/1"
	emSamplesFormat = "kspaced-em-samples/1"
)

// LapCheckpoint is the file name of lap k's prior in a run folder.
func LapCheckpoint(k int) string { return fmt.Sprintf("lap-%02d.safetensors", k) }

func (o *EMOptions) defaults() error {
	if o.Dir == "" {
		return errors.New("em: no run folder")
	}
	if o.Sampler.Steps == 0 {
		o.Sampler.Steps = 32
	}
	if o.Sampler.CGIter == 0 {
		o.Sampler.CGIter = 2 // retrain.cg_iterations in default.yaml
	}
	if o.EvalSamples == 0 {
		o.EvalSamples = 2
	}
	if o.EStepParts == 0 {
		o.EStepParts = 10
	}
	switch {
	case o.EStepParts < 1:
		return fmt.Errorf("em: %d E-step parts", o.EStepParts)
	case o.Laps < 0 || o.Laps > 99:
		return fmt.Errorf("em: %d laps, want 0 to 99", o.Laps)
	case o.EvalSamples < 1 || o.EvalSamples > 1024:
		return fmt.Errorf("em: %d evaluation samples", o.EvalSamples)
	case o.EvalSteps < 0 || o.EvalSteps == 1 || o.EvalSteps > 100000:
		return fmt.Errorf("em: %d evaluation steps", o.EvalSteps)
	case o.Train.Steps < 1:
		return fmt.Errorf("em: %d training steps per lap", o.Train.Steps)
	}
	if err := o.Network.Validate(); err != nil {
		return fmt.Errorf("em: %w", err)
	}
	return o.Gaussian.defaults()
}

// RunEM runs (or continues) expectation-maximisation in opt.Dir and returns
// the records of every lap done so far.
func RunEM(ctx context.Context, train, val []Observation, opt EMOptions) ([]LapRecord, error) {
	if err := opt.defaults(); err != nil {
		return nil, err
	}
	cfg := opt.Network
	if cfg.Channels != 2 {
		return nil, fmt.Errorf("em: network has %d channels, want 2 (real, imaginary)", cfg.Channels)
	}
	rows, cols := cfg.Rows, cfg.Cols
	if _, err := checkObservations(train, rows, cols); err != nil {
		return nil, fmt.Errorf("em: training data: %w", err)
	}
	if len(val) > 0 {
		if _, err := checkObservations(val, rows, cols); err != nil {
			return nil, fmt.Errorf("em: validation data: %w", err)
		}
	}
	if err := os.MkdirAll(opt.Dir, 0o755); err != nil {
		return nil, fmt.Errorf("em: %w", err)
	}
	if err := pinRun(opt.Dir, runOf(train, val, opt), opt.AdoptData); err != nil {
		return nil, err
	}
	recs, err := ReadLaps(opt.Dir)
	if err != nil {
		return nil, err
	}
	logf := func(format string, a ...any) {
		if opt.Log != nil {
			fmt.Fprintf(opt.Log, format+"\n", a...)
		}
	}
	if len(recs) > 0 {
		logf("em: %s: resuming after lap %d", opt.Dir, recs[len(recs)-1].Lap)
	}
	if len(recs) == 0 {
		rec, err := gaussianLap(ctx, train, val, opt)
		if err != nil {
			return nil, err
		}
		if recs, err = keepLap(opt, recs, rec, "gaussian.partial.safetensors"); err != nil {
			return nil, err
		}
		logf("%s", lapSummary(rec, opt.Laps))
	}
	for k := len(recs); k <= opt.Laps; k++ {
		rec, err := guardedLap(ctx, k, train, val, opt, recs)
		if err != nil {
			return nil, err
		}
		if recs, err = keepLap(opt, recs, rec, samplesFile(k), trainFile(k)); err != nil {
			return nil, err
		}
		logf("%s", lapSummary(rec, opt.Laps))
		if c := compareLaps(recs); c != "" {
			logf("  %s", c)
		}
	}
	return recs, nil
}

// keepLap records a finished lap (the best lap marked, then laps.json) and
// removes its scratch files.
func keepLap(opt EMOptions, recs []LapRecord, rec LapRecord, scratch ...string) ([]LapRecord, error) {
	recs = append(recs, rec)
	if _, err := markBest(opt.Dir, recs, opt.Log); err != nil {
		return nil, err
	}
	if err := writeLaps(opt.Dir, recs); err != nil {
		return nil, err
	}
	for _, f := range scratch {
		_ = os.Remove(filepath.Join(opt.Dir, f))
	}
	return recs, nil
}

func samplesFile(k int) string { return fmt.Sprintf("lap-%02d.samples.safetensors", k) }
func trainFile(k int) string   { return fmt.Sprintf("lap-%02d.train.safetensors", k) }

func lapSummary(r LapRecord, laps int) string {
	ev := "no validation data"
	if r.Validation.N > 0 {
		ev = "validation " + r.Validation.scores()
	}
	if r.Kind == priors.KindGaussian {
		return fmt.Sprintf("lap 0/%d (gaussian, %d EM iterations): %.1f s; %s", laps, len(r.GaussianLaps), r.LapSeconds, ev)
	}
	return fmt.Sprintf("lap %d/%d: E-step %.1f s (%.2f s/scan), M-step %.1f s (%d steps, loss %.4f), evaluation %.1f s; %s",
		r.Lap, laps, r.EStepSeconds, r.EStepSeconds/float64(max(r.TrainImages, 1)), r.MStepSeconds, r.MStepSteps, r.MStepLoss, r.EvalSeconds, ev)
}

// pairedPSNR is b's validation PSNR minus a's, scan by scan: the mean, its
// standard error and the scans b is better on (ok false when the laps were
// not scored on the same scans with the same sampler steps).
func pairedPSNR(a, b LapRecord) (mean, se float64, better, n int, ok bool) {
	n = len(b.ValidationPSNR)
	if n < 2 || len(a.ValidationPSNR) != n || a.EvalSteps != b.EvalSteps {
		return 0, 0, 0, n, false
	}
	d := make([]float64, n)
	for i := range d {
		d[i] = b.ValidationPSNR[i] - a.ValidationPSNR[i]
		if d[i] > 0 {
			better++
		}
	}
	m, sd := meanSD(d)
	return m, sd / math.Sqrt(float64(n)), better, n, true
}

// compareLaps says, scan by scan, how the newest lap's validation PSNR
// differs from the lap before and from the best lap: whether a lap's gain is
// larger than its scans' scatter.
func compareLaps(recs []LapRecord) string {
	if len(recs) < 2 {
		return ""
	}
	last := recs[len(recs)-1]
	var parts []string
	add := func(what string, r LapRecord) {
		if m, se, better, n, ok := pairedPSNR(r, last); ok {
			parts = append(parts, fmt.Sprintf("%s (lap %d) %+.2f ± %.2f dB, better on %d of %d scans", what, r.Lap, m, se, better, n))
		}
	}
	add("against the lap before", recs[len(recs)-2])
	for _, r := range recs[:len(recs)-1] {
		if r.Best && r.Lap != recs[len(recs)-2].Lap {
			add("against the best", r)
		}
	}
	if len(parts) == 0 {
		return ""
	}
	return fmt.Sprintf("lap %d validation, paired: %s", last.Lap, strings.Join(parts, "; "))
}

// pinRun writes run.json, or checks that the folder's matches. With adopt,
// a folder that differs only in its data continues on the new data
// (EMOptions.AdoptData).
func pinRun(dir string, run emRun, adopt bool) error {
	path := filepath.Join(dir, "run.json")
	raw, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		return writeJSONAtomic(path, run)
	}
	if err != nil {
		return fmt.Errorf("em: %w", err)
	}
	var have emRun
	if err := json.Unmarshal(raw, &have); err != nil {
		return fmt.Errorf("em: %s: %w", path, err)
	}
	norm := func(r emRun) emRun {
		if len(r.Network.Attention) == 0 {
			r.Network.Attention = nil
		}
		r.Earlier = nil
		return r
	}
	want := norm(run)
	if reflect.DeepEqual(norm(have), want) {
		return nil
	}
	if adopt {
		other := norm(have)
		other.DataID = want.DataID
		if reflect.DeepEqual(other, want) {
			recs, err := ReadLaps(dir)
			if err != nil {
				return err
			}
			run.Earlier = append(have.Earlier, EarlierData{DataID: have.DataID, LastLap: len(recs) - 1})
			// The next lap's saved E-step samples and M-step state came from the old data.
			for _, f := range []string{samplesFile(len(recs)), trainFile(len(recs))} {
				if err := os.Remove(filepath.Join(dir, f)); err != nil && !errors.Is(err, os.ErrNotExist) {
					return fmt.Errorf("em: %w", err)
				}
			}
			return writeJSONAtomic(path, run)
		}
	}
	a, _ := json.Marshal(have)
	b, _ := json.Marshal(run)
	hint := "choose a new output folder or remove it"
	if have.DataID != run.DataID {
		hint += " (or, for the same scans read anew, e.g. by a newer noise estimate, continue it on these with --adopt-data)"
	}
	return fmt.Errorf("em: %s was made for another run (%s; now %s): %s", dir, a, b, hint)
}

// ReadLaps reads the lap records of the run in dir (none yet: nil), checking
// that each lists its lap in order and that its checkpoint is there.
func ReadLaps(dir string) ([]LapRecord, error) {
	path := filepath.Join(dir, "laps.json")
	raw, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("em: %w", err)
	}
	var recs []LapRecord
	if err := json.Unmarshal(raw, &recs); err != nil {
		return nil, fmt.Errorf("em: %s: %w", path, err)
	}
	for i, r := range recs {
		if r.Lap != i {
			return nil, fmt.Errorf("em: %s: record %d is lap %d", path, i, r.Lap)
		}
		if _, err := os.Stat(filepath.Join(dir, r.Checkpoint)); err != nil {
			return nil, fmt.Errorf("em: %s lists lap %d but its checkpoint is unreadable: %w", path, i, err)
		}
	}
	return recs, nil
}

func writeLaps(dir string, recs []LapRecord) error {
	return writeJSONAtomic(filepath.Join(dir, "laps.json"), recs)
}

func writeJSONAtomic(path string, v any) error {
	b, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	return safefile.WriteFile(path, append(b, '\n'), 0o644)
}

// bar returns a progress callback drawing on w (nil: none).
func bar(w io.Writer, desc string, total int) func(done, total int) {
	if w == nil {
		return nil
	}
	b := progressbar.NewOptions(total, progressbar.OptionSetWriter(w), progressbar.OptionSetDescription(desc),
		progressbar.OptionShowCount(), progressbar.OptionSetElapsedTime(true), progressbar.OptionSetPredictTime(true),
		progressbar.OptionThrottle(200*time.Millisecond), progressbar.OptionSetWidth(30),
		progressbar.OptionOnCompletion(func() { fmt.Fprintln(w) }))
	return func(done, _ int) { _ = b.Set(done) }
}

func gaussianLap(ctx context.Context, train, val []Observation, opt EMOptions) (LapRecord, error) {
	start := time.Now()
	rows, cols := opt.Network.Rows, opt.Network.Cols
	partial := filepath.Join(opt.Dir, "gaussian.partial.safetensors")
	meta := func(lap int) priors.GaussianMeta {
		return priors.GaussianMeta{Normalisation: opt.Normalisation, Provenance: priors.Provenance{
			Data: opt.DataDescription, DataHash: opt.DataID, Images: len(train), Steps: lap, EMLap: 0, Seed: opt.Seed}}
	}
	gopt := opt.Gaussian
	gopt.Workers, gopt.Seed = opt.Workers, opt.Seed
	gopt.Init, gopt.FirstLap = nil, 1
	var prev []GaussianLap
	if g, info, err := priors.LoadGaussian(partial); err == nil && info.Provenance.DataHash == opt.DataID &&
		info.Rows == rows && info.Cols == cols && info.Rank == gopt.Rank && info.Provenance.Steps < gopt.Laps {
		gopt.Init, gopt.FirstLap = g, info.Provenance.Steps+1
		if raw, err := os.ReadFile(partial + ".json"); err == nil {
			_ = json.Unmarshal(raw, &prev)
		}
		// The records are saved before the prior: a kill between the two
		// leaves a record of an iteration the prior does not have.
		prev = prev[:min(len(prev), info.Provenance.Steps)]
	}
	laps := prev
	var p func(done, total int)
	gopt.Progress = func(done, total int) {
		if p == nil {
			p = bar(opt.Progress, "gaussian E-step", total)
		}
		if p != nil {
			p(done, total)
		}
		if done == total {
			p = nil
		}
	}
	gopt.AfterLap = func(g *priors.Gaussian, rec GaussianLap) error {
		laps = append(laps, rec)
		if opt.Log != nil {
			fmt.Fprintf(opt.Log, "gaussian EM %d/%d: data consistency %.3f (prior of the previous iteration), CG %.0f iterations, mean variance %.4g, %.1f s\n",
				rec.Lap, gopt.Laps, rec.DataConsistency, rec.CGIterations, rec.MeanVariance, rec.Seconds)
		}
		if err := writeJSONAtomic(partial+".json", laps); err != nil {
			return err
		}
		return priors.SaveGaussian(partial, g, meta(rec.Lap))
	}
	// With the partial fit complete (FirstLap > Laps) this returns Init.
	g, _, err := FitGaussianEM(ctx, train, rows, cols, gopt)
	if err != nil {
		return LapRecord{}, err
	}
	var gaussSec float64
	for _, l := range laps {
		gaussSec += l.Seconds
	}
	path := filepath.Join(opt.Dir, LapCheckpoint(0))
	if err := priors.SaveGaussian(path, g, meta(len(laps))); err != nil {
		return LapRecord{}, err
	}
	_ = os.Remove(partial + ".json")
	rec := LapRecord{Lap: 0, Kind: priors.KindGaussian, Checkpoint: LapCheckpoint(0), DataID: opt.DataID, GaussianLaps: laps, GaussSeconds: gaussSec,
		TrainImages: len(train), Workers: opt.Workers}
	if err := evaluateLap(ctx, g, val, opt, &rec); err != nil {
		return LapRecord{}, err
	}
	rec.Finished = time.Now().UTC()
	rec.LapSeconds = time.Since(start).Seconds()
	return rec, nil
}

func evaluateLap(ctx context.Context, d priors.Denoiser, val []Observation, opt EMOptions, rec *LapRecord) error {
	if len(val) == 0 {
		return nil
	}
	start := time.Now()
	so := opt.Sampler
	so.Samples, so.Seed = opt.EvalSamples, opt.Seed^0x6576616c
	if opt.EvalSteps > 0 {
		so.Steps = opt.EvalSteps
	}
	rec.EvalSteps = so.Steps
	means, err := PosteriorMeans(ctx, d, val, so, opt.Workers, bar(opt.Progress, fmt.Sprintf("lap %d validation", rec.Lap), len(val)))
	if err != nil {
		return fmt.Errorf("em lap %d: validation: %w", rec.Lap, err)
	}
	scores, err := ScoreReconstructions(val, means, opt.Network.Rows, opt.Network.Cols)
	if err != nil {
		return fmt.Errorf("em lap %d: validation: %w", rec.Lap, err)
	}
	rec.Validation = Summarise(scores)
	if rec.Validation.WithTruth == len(scores) {
		for _, s := range scores {
			rec.ValidationPSNR = append(rec.ValidationPSNR, s.PSNR)
		}
	}
	rec.EvalSeconds = time.Since(start).Seconds()
	return nil
}

func networkLap(ctx context.Context, k int, train, val []Observation, opt EMOptions) (LapRecord, error) {
	start := time.Now()
	cfg := opt.Network
	rows, cols := cfg.Rows, cfg.Cols
	n := 2 * rows * cols
	rec := LapRecord{Lap: k, Kind: priors.KindUNet, Checkpoint: LapCheckpoint(k), DataID: opt.DataID, TrainImages: len(train), Workers: opt.Workers,
		EStepSteps: opt.Sampler.Steps, EStepCGIter: opt.Sampler.CGIter, EStepSamples: opt.samplesPerObservation()}
	prevPath := filepath.Join(opt.Dir, LapCheckpoint(k-1))
	prior, _, err := priors.LoadPrior(prevPath)
	if err != nil {
		return rec, fmt.Errorf("em lap %d: %w", k, err)
	}
	// E-step.
	spath := filepath.Join(opt.Dir, samplesFile(k))
	per := opt.samplesPerObservation()
	samples, secs, err := readSamples(spath, opt, k, per*len(train), n)
	if err != nil {
		// The E-step is saved in parts as it goes (the shard files of
		// EStepShard, the same samples bit for bit), so a killed E-step
		// resumes after its last finished part.
		ep, err := atObservations(prior, opt)
		if err != nil {
			return rec, fmt.Errorf("em lap %d: %w", k, err)
		}
		parts := min(opt.EStepParts, len(train))
		for i := 0; i < parts; i++ {
			if shardDone(train, opt, k, i, parts) {
				rec.EStepResumed = true
				continue
			}
			if err := drawShard(ctx, ep, train, opt, k, i, parts); err != nil {
				return rec, err
			}
		}
		if err := MergeEStepShards(train, val, opt, k, parts); err != nil {
			return rec, err
		}
		if samples, secs, err = readSamples(spath, opt, k, per*len(train), n); err != nil {
			return rec, fmt.Errorf("em lap %d: %w", k, err)
		}
	} else {
		rec.EStepResumed = true
	}
	rec.EStepSeconds = secs
	// M-step: warm start from the previous lap's network (lap 1 starts fresh).
	var u *priors.UNet
	if pu, ok := prior.(*priors.UNet); ok {
		u = pu
		if !u.Config().Same(cfg) {
			return rec, fmt.Errorf("em lap %d: lap %d's network differs from the configured one", k, k-1)
		}
	} else if u, err = priors.NewUNet(cfg, opt.Seed); err != nil {
		return rec, fmt.Errorf("em lap %d: %w", k, err)
	}
	to := opt.Train
	if k == 1 && opt.FirstLapSteps > 0 {
		to.Steps = opt.FirstLapSteps // a fresh network needs longer than a warm-started one
	}
	to.Seed = opt.Seed + uint64(k)
	to.CheckpointPath = filepath.Join(opt.Dir, trainFile(k))
	if to.CheckpointEvery == 0 {
		to.CheckpointEvery = max(1, to.Steps/10)
	}
	to.Resume = ""
	if _, err := os.Stat(to.CheckpointPath); err == nil {
		to.Resume = to.CheckpointPath
		rec.MStepResumed = true
	}
	to.EMLap, to.Normalisation, to.DataDescription = k, opt.Normalisation, opt.DataDescription
	to.Validation, to.ValFraction = nil, 0
	data := &priors.SliceDataset{C: 2, H: rows, W: cols, Data: samples}
	t0 := time.Now()
	tu, err := TrainingNet(u, to)
	if err != nil {
		return rec, err
	}
	st, err := priors.Train(ctx, tu, data, to, opt.Progress)
	if err != nil && to.Resume != "" && ctx.Err() == nil {
		// An unusable training checkpoint (other settings): start the M-step over.
		to.Resume, rec.MStepResumed = "", false
		if pu, ok := prior.(*priors.UNet); ok {
			u = pu
			if err := setWeightsFrom(u, prevPath); err != nil {
				return rec, fmt.Errorf("em lap %d: %w", k, err)
			}
		} else if u, err = priors.NewUNet(cfg, opt.Seed); err != nil {
			return rec, fmt.Errorf("em lap %d: %w", k, err)
		}
		if tu, err = TrainingNet(u, to); err != nil {
			return rec, err
		}
		st, err = priors.Train(ctx, tu, data, to, opt.Progress)
	}
	if err != nil {
		return rec, fmt.Errorf("em lap %d: M-step: %w", k, err)
	}
	rec.MStepSeconds = time.Since(t0).Seconds()
	rec.MStepSteps = st.Steps
	if len(st.Loss) > 0 {
		rec.MStepLoss = st.Loss[len(st.Loss)-1]
	} else {
		rec.MStepLoss = st.LastLoss
	}
	meta := priors.CheckpointMeta{Normalisation: opt.Normalisation, Provenance: priors.Provenance{
		Data: opt.DataDescription, DataHash: st.DataHash, Images: len(train), Steps: st.Steps, EMLap: k,
		CodeVersion: priors.CodeVersion(), Seed: to.Seed, Crops: priors.CropNote(to)}}
	if err := u.Save(filepath.Join(opt.Dir, LapCheckpoint(k)), meta); err != nil {
		return rec, fmt.Errorf("em lap %d: %w", k, err)
	}
	eu, err := atObservations(u, opt)
	if err != nil {
		return rec, fmt.Errorf("em lap %d: %w", k, err)
	}
	if err := evaluateLap(ctx, eu, val, opt, &rec); err != nil {
		return rec, err
	}
	rec.Finished = time.Now().UTC()
	rec.LapSeconds = time.Since(start).Seconds()
	return rec, nil
}

// setWeightsFrom reloads a checkpoint's weights into u.
func setWeightsFrom(u *priors.UNet, path string) error {
	_, err := u.Load(path)
	return err
}

func writeSamples(path string, samples []float32, opt EMOptions, lap, count, rows, cols int, seconds float64) error {
	md := map[string]string{"format": emSamplesFormat, "data_id": opt.DataID, "estep": eStepSampler(opt), "lap": fmt.Sprint(lap),
		"seconds": fmt.Sprintf("%.3f", seconds)}
	ts := map[string]priors.Tensor{"samples": {Shape: []int{count, 2, rows, cols}, Data: samples}}
	return priors.WriteTensors(path, ts, md)
}

// eStepSampler names the E-step's sampler settings in its saved samples, so
// that parts drawn before a change of retrain.steps or cg_iterations are
// drawn again, not mixed with the new ones.
func eStepSampler(opt EMOptions) string {
	return fmt.Sprintf("steps %d, CG %d", opt.Sampler.Steps, opt.Sampler.CGIter)
}

// readSamples loads a lap's saved E-step output, and the seconds it took,
// if it is the one wanted: this run's data, lap and E-step sampler.
func readSamples(path string, opt EMOptions, lap, count, n int) ([]float32, float64, error) {
	ts, md, err := priors.ReadTensors(path)
	if err != nil {
		return nil, 0, err
	}
	t, ok := ts["samples"]
	if md["format"] != emSamplesFormat || md["data_id"] != opt.DataID || md["estep"] != eStepSampler(opt) || md["lap"] != fmt.Sprint(lap) || !ok || len(t.Data) != count*n {
		return nil, 0, fmt.Errorf("%s: not this run's lap-%d samples", path, lap)
	}
	var s float64
	_, _ = fmt.Sscanf(md["seconds"], "%g", &s)
	return t.Data, s, nil
}
