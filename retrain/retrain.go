package retrain

import (
	"context"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"sort"
	"strings"

	"github.com/kspaced/kspaced/configs"
	"github.com/kspaced/kspaced/mri/kspaceio"
	"github.com/kspaced/kspaced/pipeline"
	"github.com/kspaced/kspaced/posterior"
	"github.com/kspaced/kspaced/priors"
)

// RetrainOptions configure Retrain.
type RetrainOptions struct {
	// Data are k-space files, or folders searched recursively, in any
	// format kspaced reads. NAME_truth.npy beside NAME.h5 (as `kspaced
	// simulate` writes) is the ground truth of its slices, used only to
	// score each lap.
	Data []string
	// Out is the run folder: lap-NN.safetensors priors, laps.json, run.json.
	Out    string
	Config *configs.Config // the retrain section and recon.coil_maps
	// Progress receives progress bars (os.Stderr); Log the per-lap summary
	// lines and warnings. Either may be nil.
	Progress, Log io.Writer
	// EStep, when set, makes Retrain run only that shard of a lap's E-step
	// (EStepShard), as one task of a scheduler's array.
	EStep *EStepTask
	// MergeShards, when > 0, merges the E-step shards of the last lap
	// (retrain.laps) before EM goes on: the M-step job after the array.
	MergeShards int
	// AdoptData continues a run folder made on other data of the same shape
	// on this data (EMOptions.AdoptData).
	AdoptData bool
}

// EStepTask is one shard of one lap's E-step.
type EStepTask struct{ Lap, Index, Count int }

// RetrainResult is what Retrain did.
type RetrainResult struct {
	Laps              []LapRecord
	Train, Validation int      // observations in each split
	Skipped           []string // files or slices left out, and why
	Prior             string   // the last lap's checkpoint
	Network           priors.UNetConfig
}

// Retrain learns a diffusion prior from undersampled scans only, by
// expectation-maximisation (RunEM), in opt.Out; a second call with
// the same data continues an interrupted run from its last saved step.
//
// Every slice goes through pipeline.Prepare, as reconstruction does, so the prior
// learns exactly the space inference samples in (pipeline.NormalisationScheme):
// whitened k-space, ESPIRiT maps from the scan's own calibration lines, the
// noise level from its noise data or k-space corners. Files that cannot be
// read, are not k-space, or slices that cannot be prepared (or have no
// noise estimate) are skipped with a warning; all usable slices must share
// one image size.
func Retrain(ctx context.Context, opt RetrainOptions) (*RetrainResult, error) {
	if opt.Config == nil {
		opt.Config = configs.Default()
	}
	rc := opt.Config.Retrain
	if opt.Out == "" {
		return nil, errors.New("retrain: no output folder")
	}
	warn := func(s string) {
		if opt.Log != nil {
			fmt.Fprintln(opt.Log, "warning:", s)
		}
	}
	data, err := LoadObservations(ctx, opt.Data, opt.Config.Recon.CoilMaps, warn)
	if err != nil {
		return nil, err
	}
	res := &RetrainResult{Skipped: data.Skipped}
	train, val := SplitObservations(data.Obs, rc.ValFraction, rc.Seed)
	if len(train) <= rc.Rank {
		return nil, fmt.Errorf("%w: %d training scans (of %d usable, %.0f%% held out) cannot fit a rank-%d Gaussian; add scans or lower retrain.rank",
			pipeline.ErrBadInput, len(train), len(data.Obs), 100*rc.ValFraction, rc.Rank)
	}
	res.Train, res.Validation = len(train), len(val)
	cfg, err := priors.Network(rc.Network, data.Rows, data.Cols)
	if err != nil {
		return nil, err
	}
	res.Network = cfg
	steps := rc.TrainSteps
	if rc.Epochs > 0 {
		steps = rc.Epochs * ((len(train) + rc.BatchSize - 1) / rc.BatchSize)
	}
	withTruth := 0
	for _, o := range data.Obs {
		if o.Truth != nil {
			withTruth++
		}
	}
	if opt.Log != nil {
		fmt.Fprintf(opt.Log, "retrain: %d scans of %d×%d (%d train, %d validation, %d with ground truth) from %d files; network %s; %d laps of %d M-step steps\n",
			len(data.Obs), data.Rows, data.Cols, len(train), len(val), withTruth, data.Files, rc.Network, rc.Laps, steps)
	}
	em := EMOptions{
		Dir: opt.Out, Laps: rc.Laps,
		Gaussian: GaussianEMOptions{Rank: rc.Rank, Laps: rc.GaussianLaps, Samples: rc.GaussianSamples},
		Network:  cfg,
		Sampler:  posterior.SampleOptions{Method: "mmps", Covariance: posterior.CovJacobian, Steps: rc.Steps, CGIter: rc.CGIterations},
		Train: priors.TrainOptions{Steps: steps, BatchSize: rc.BatchSize, LR: rc.LearningRate,
			WarmupSteps: rc.WarmupSteps, EMADecay: rc.EMADecay, CropRows: rc.Crop, CropCols: rc.Crop, Scales: rc.Scales},
		Guard:       GuardOptions{Disabled: rc.GuardRetries == 0, Retries: rc.GuardRetries, LRFactor: rc.GuardLRFactor},
		EvalSamples: rc.EvalSamples, EvalSteps: rc.EvalSteps, Workers: rc.Workers, Seed: rc.Seed, SamplesPerObservation: rc.SamplesPerScan,
		FirstLapSteps:   rc.FirstLapSteps,
		DataID:          data.ID,
		AdoptData:       opt.AdoptData,
		DataDescription: fmt.Sprintf("EM from %d undersampled scans (%d files)", len(train), data.Files),
		Normalisation:   priors.Normalisation{Scheme: pipeline.NormalisationScheme},
		Progress:        opt.Progress, Log: opt.Log,
	}
	if t := opt.EStep; t != nil {
		return res, EStepShard(ctx, train, val, em, t.Lap, t.Index, t.Count)
	}
	if opt.MergeShards > 0 {
		if err := MergeEStepShards(train, val, em, rc.Laps, opt.MergeShards); err != nil {
			return nil, err
		}
	}
	recs, err := RunEM(ctx, train, val, em)
	if err != nil {
		return nil, err
	}
	res.Laps = recs
	res.Prior = filepath.Join(opt.Out, recs[len(recs)-1].Checkpoint)
	// Hand over the best lap by validation (BestCheckpoint), not the newest.
	if _, err := os.Stat(filepath.Join(opt.Out, BestCheckpoint)); err == nil {
		res.Prior = filepath.Join(opt.Out, BestCheckpoint)
	}
	return res, nil
}

// Observations are prepared scans ready for EM or for scoring priors.
type Observations struct {
	Obs        []Observation
	Rows, Cols int
	Files      int      // files that gave at least one observation
	Skipped    []string // what was left out, and why
	ID         string   // sha256 of the observations' data, masks and noise levels
}

// LoadObservations reads every k-space file among paths (folders walked
// recursively, in name order), prepares each slice as reconstruction does
// and returns them as observations for priors. See Retrain for what is
// skipped; warn, when set, hears about each skip as it happens.
func LoadObservations(ctx context.Context, paths []string, cm configs.CoilMaps, warn func(string)) (*Observations, error) {
	files, err := pipeline.KSpaceCandidates(paths)
	if err != nil {
		return nil, err
	}
	if len(files) == 0 {
		return nil, fmt.Errorf("%w: no files in %s", pipeline.ErrBadInput, strings.Join(paths, ", "))
	}
	out := &Observations{}
	skip := func(format string, a ...any) {
		s := fmt.Sprintf(format, a...)
		out.Skipped = append(out.Skipped, s)
		if warn != nil {
			warn(s)
		}
	}
	type sizeUse struct {
		files []string
		n     int
	}
	sizes := map[[2]int]*sizeUse{}
	for _, f := range files {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		if _, err := kspaceio.Detect(f); err != nil {
			skip("%s: not k-space (%v)", f, err)
			continue
		}
		vol, err := kspaceio.Read(f)
		if err != nil {
			skip("%s: unreadable: %v", f, err)
			continue
		}
		truth := readTruth(f, vol, skip)
		used := 0
		for i := range vol.Slices {
			s := &vol.Slices[i]
			name := fmt.Sprintf("%s slice %d", filepath.Base(f), i)
			p, err := pipeline.Prepare(ctx, s, cm)
			if err != nil {
				if ctx.Err() != nil {
					return nil, ctx.Err()
				}
				skip("%s: %v", name, err)
				continue
			}
			if !(p.NoiseVar > 0) {
				skip("%s: no noise estimate (no noise data, k-space corners unusable)", name)
				continue
			}
			o := Observation{Name: name, A: p.Op, Y: s.KSpace, NoiseVar: p.NoiseVar, Scale: p.Scale}
			if truth != nil {
				o.Truth = truth[i*s.Rows*s.Cols : (i+1)*s.Rows*s.Cols]
			}
			out.Obs = append(out.Obs, o)
			k := [2]int{s.Rows, s.Cols}
			if sizes[k] == nil {
				sizes[k] = &sizeUse{}
			}
			if u := sizes[k]; len(u.files) == 0 || u.files[len(u.files)-1] != filepath.Base(f) {
				u.files = append(u.files, filepath.Base(f))
			}
			sizes[k].n++
			used++
		}
		if used > 0 {
			out.Files++
		}
	}
	if len(out.Obs) == 0 {
		return nil, fmt.Errorf("%w: no usable k-space among %d files in %s (%s)", pipeline.ErrBadInput, len(files), strings.Join(paths, ", "), strings.Join(out.Skipped, "; "))
	}
	if len(sizes) > 1 {
		var parts []string
		for k, u := range sizes {
			ex := u.files
			if len(ex) > 3 {
				ex = append(ex[:3:3], "…")
			}
			parts = append(parts, fmt.Sprintf("%d×%d (%d slices: %s)", k[0], k[1], u.n, strings.Join(ex, ", ")))
		}
		sort.Strings(parts)
		return nil, fmt.Errorf("%w: the scans have different image sizes, %s; a prior is learnt for one size: retrain each size separately", pipeline.ErrBadInput, strings.Join(parts, "; "))
	}
	for k := range sizes {
		out.Rows, out.Cols = k[0], k[1]
	}
	out.ID = observationsID(out.Obs)
	return out, nil
}

// readTruth loads NAME_truth.npy beside NAME.ext when it matches the
// volume's slices; a mismatched one is reported and ignored.
func readTruth(path string, vol *kspaceio.Volume, skip func(string, ...any)) []complex64 {
	tp := pipeline.TruthPath(path)
	if _, err := os.Stat(tp); err != nil {
		return nil
	}
	npy, err := kspaceio.ReadNPY(tp)
	if err != nil {
		skip("%s: ignored: %v", tp, err)
		return nil
	}
	s := vol.Slices[0]
	want := len(vol.Slices) * s.Rows * s.Cols
	shapeOK := len(npy.Shape) >= 2 && npy.Shape[len(npy.Shape)-2] == s.Rows && npy.Shape[len(npy.Shape)-1] == s.Cols
	for _, sl := range vol.Slices {
		shapeOK = shapeOK && sl.Rows == s.Rows && sl.Cols == s.Cols
	}
	if !shapeOK || len(npy.Data) != want {
		skip("%s: ignored: shape %v does not match %d slices of %d×%d", tp, npy.Shape, len(vol.Slices), s.Rows, s.Cols)
		return nil
	}
	return npy.Data
}

// observationsID hashes what EM sees of each observation.
func observationsID(obs []Observation) string {
	h := sha256.New()
	var b [8]byte
	for _, o := range obs {
		binary.LittleEndian.PutUint64(b[:], math.Float64bits(o.NoiseVar))
		h.Write(b[:])
		binary.LittleEndian.PutUint64(b[:], math.Float64bits(o.Scale))
		h.Write(b[:])
		buf := make([]byte, 8*len(o.Y))
		for i, v := range o.Y {
			binary.LittleEndian.PutUint32(buf[8*i:], math.Float32bits(real(v)))
			binary.LittleEndian.PutUint32(buf[8*i+4:], math.Float32bits(imag(v)))
		}
		h.Write(buf)
	}
	return hex.EncodeToString(h.Sum(nil))
}

// SplitObservations holds out round(fraction·N) observations, chosen by the
// seed, keeping at least one for training; both keep the input order.
func SplitObservations(obs []Observation, fraction float64, seed uint64) (train, val []Observation) {
	n := len(obs)
	nv := min(int(math.Round(fraction*float64(n))), n-1)
	if nv <= 0 {
		return obs, nil
	}
	idx := rand.New(rand.NewPCG(seed, 0x76616c)).Perm(n)
	held := make([]bool, n)
	for _, i := range idx[:nv] {
		held[i] = true
	}
	for i, o := range obs {
		if held[i] {
			val = append(val, o)
		} else {
			train = append(train, o)
		}
	}
	return train, val
}
