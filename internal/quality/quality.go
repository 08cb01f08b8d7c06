// Package quality scores reconstruction methods on test scans with known
// truth (`kspaced bench quality`): PSNR and SSIM of magnitudes as fastMRI
// computes them (data range = the truth's max), per test folder (a cell:
// matrix × acceleration), with the L1-wavelet and BART regularisation
// weights tuned on separate validation scans, and for the sampling methods
// the coverage of their 90 % intervals. The kspaced methods run through
// pipeline.Run exactly as `kspaced recon` runs them; BART gets the same
// prewhitened k-space and coil maps (pipeline.Prepare).
package quality

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/kspaced/kspaced/configs"
	"github.com/kspaced/kspaced/mri"
	"github.com/kspaced/kspaced/mri/kspaceio"
	"github.com/kspaced/kspaced/pipeline"
	"github.com/kspaced/kspaced/posterior"
)

// BartPics is the method name of `bart pics -l1` in Options.Methods.
const BartPics = "bart-pics"

func sampling(m string) bool {
	meth, _ := configs.LookupMethod(m)
	return meth.Sampling
}

// DefaultGrid is the λ grid tuned over when none is given: 7 values
// log-spaced from 1e-4 to 1e-1 (weights are relative to a unit zero-filled
// peak, as the pipeline scales k-space).
var DefaultGrid = []float64{1e-4, 3.16e-4, 1e-3, 3.16e-3, 1e-2, 3.16e-2, 1e-1}

// Options say what to score and how.
type Options struct {
	Tests []string // test folders, one cell each
	// MaxScans limits each test folder to that many scans spread evenly
	// over its name order; 0 scores them all.
	MaxScans int
	Methods  []string // configs.Methods names or BartPics
	// Config is the base configuration (nil: the defaults); its
	// Recon.Sampler says prior, samples, steps and CG iterations.
	Config *configs.Config
	// TuneOn is a folder of validation scans (with truth, never the test
	// scans) on which the l1-wavelet and bart-pics weights are tuned over
	// Grid and BartGrid (nil: DefaultGrid), using TuneScans of them (spread
	// evenly; 0: 4). Without it l1-wavelet uses L1Lambda (0:
	// Config.Recon.Lambda) and bart-pics BartLambda.
	TuneOn          string
	L1Lambda        float64
	TuneScans       int
	Grid, BartGrid  []float64
	BartLambda      float64
	Bart            string    // the bart executable (BartPics only)
	Log             io.Writer // progress lines; nil: none
	KeepTemporaries bool      // for debugging: leave the scratch folder
}

// Summary is the mean and sample standard deviation of N values.
type Summary struct {
	Mean, SD float64
	N        int
}

func summarise(v []float64) Summary {
	s := Summary{N: len(v)}
	if len(v) == 0 {
		return Summary{Mean: math.NaN(), SD: math.NaN()}
	}
	for _, x := range v {
		s.Mean += x
	}
	s.Mean /= float64(len(v))
	if len(v) > 1 {
		for _, x := range v {
			s.SD += (x - s.Mean) * (x - s.Mean)
		}
		s.SD = math.Sqrt(s.SD / float64(len(v)-1))
	}
	return s
}

// Score is one slice's result under one method.
type Score struct {
	Scan    string  `json:"scan"`
	PSNR    float64 `json:"psnr"`
	SSIM    float64 `json:"ssim"`
	Seconds float64 `json:"seconds"` // end to end: read, prepare, reconstruct
	// Coverage (sampling methods) is the fraction of foreground pixels
	// (truth > 0.1·max) inside the 90 % interval mean ± k·std of n samples,
	// k = posterior.IntervalWidth(n, 0.90) (2.01 for 8 samples), magnitudes.
	Coverage *float64 `json:"coverage,omitempty"`
	// CoverageNormal is the same with the normal k = 1.645, what this
	// metric was before (it holds only 0.835 of exact draws for 8 samples).
	CoverageNormal *float64 `json:"coverage_1645,omitempty"`
	// SpreadRatio is the factor recon.sampler.spread_check applied to the
	// std (absent when not run, or when it left the std as sampled).
	SpreadRatio *float64 `json:"spread_ratio,omitempty"`
}

// Cell is one test folder under one method.
type Cell struct {
	Folder     string  `json:"folder"`
	Rows, Cols int     `json:"-"`
	Method     string  `json:"method"`
	Lambda     float64 `json:"lambda,omitempty"`
	Scores     []Score `json:"scores"`
	PSNR, SSIM Summary `json:"-"`
	Coverage   Summary `json:"-"`
	Seconds    Summary `json:"-"`
}

func (c *Cell) summarise() {
	var p, s, cov, sec []float64
	for _, x := range c.Scores {
		p, s, sec = append(p, x.PSNR), append(s, x.SSIM), append(sec, x.Seconds)
		if x.Coverage != nil {
			cov = append(cov, *x.Coverage)
		}
	}
	c.PSNR, c.SSIM, c.Coverage, c.Seconds = summarise(p), summarise(s), summarise(cov), summarise(sec)
}

// Tuning is one method's λ search on the validation scans.
type Tuning struct {
	Method string    `json:"method"`
	Folder string    `json:"folder"`
	Scans  []string  `json:"scans"`
	Grid   []float64 `json:"grid"`
	PSNR   []float64 `json:"mean_psnr"` // per grid value
	SSIM   []float64 `json:"mean_ssim"`
	Best   float64   `json:"best"`
}

// Report is the whole measurement.
type Report struct {
	Methods    []string        `json:"methods"`
	Sampler    configs.Sampler `json:"sampler"`
	CGLambda   float64         `json:"cg_sense_lambda"`
	Iterations int             `json:"iterations"`
	L1Lambda   float64         `json:"l1_lambda"`
	BartLambda float64         `json:"bart_lambda"`
	Tuning     []Tuning        `json:"tuning,omitempty"`
	Cells      []Cell          `json:"cells"`
}

// Run scores opt.Methods on every test folder.
func Run(ctx context.Context, opt Options) (*Report, error) {
	h, err := newHarness(opt)
	if err != nil {
		return nil, err
	}
	defer h.close()
	rep := &Report{Methods: opt.Methods, Sampler: h.cfg.Recon.Sampler, CGLambda: h.cfg.Recon.Lambda,
		Iterations: h.cfg.Recon.Iterations, L1Lambda: h.cfg.Recon.Lambda, BartLambda: opt.BartLambda}
	if opt.L1Lambda > 0 {
		rep.L1Lambda = opt.L1Lambda
	}
	if opt.TuneOn != "" {
		for _, m := range opt.Methods {
			if m != "l1-wavelet" && m != BartPics {
				continue
			}
			t, err := h.tune(ctx, m)
			if err != nil {
				return nil, err
			}
			rep.Tuning = append(rep.Tuning, *t)
			if m == BartPics {
				rep.BartLambda = t.Best
			} else {
				rep.L1Lambda = t.Best
			}
		}
	}
	h.lambda = map[string]float64{"l1-wavelet": rep.L1Lambda, BartPics: rep.BartLambda}
	for _, dir := range opt.Tests {
		files, err := scans(dir, opt.MaxScans)
		if err != nil {
			return nil, err
		}
		// Cells in method order.
		var cells []Cell
		for _, m := range opt.Methods {
			c := Cell{Folder: dir, Method: m}
			if m == "l1-wavelet" || m == BartPics {
				c.Lambda = h.lambda[m]
			}
			cells = append(cells, c)
		}
		for k, f := range files {
			truth, err := readTruth(f)
			if err != nil {
				return nil, err
			}
			for i, m := range opt.Methods {
				got, err := h.reconstruct(ctx, f, m, h.lambda[m])
				if err != nil {
					return nil, fmt.Errorf("%s %s: %w", m, f, err)
				}
				sc, err := scoreAll(filepath.Base(f), truth, got)
				if err != nil {
					return nil, fmt.Errorf("%s %s: %w", m, f, err)
				}
				c := &cells[i]
				c.Rows, c.Cols = truth.rows, truth.cols
				c.Scores = append(c.Scores, sc...)
				for _, s := range sc {
					h.logf("%s [%d/%d] %s %s: PSNR %.2f dB, SSIM %.4f%s, %.1f s\n", filepath.Base(dir), k+1, len(files),
						s.Scan, c.Method, s.PSNR, s.SSIM, coverageText(s.Coverage)+spreadText(s.SpreadRatio), s.Seconds)
				}
			}
		}
		for i := range cells {
			cells[i].summarise()
		}
		rep.Cells = append(rep.Cells, cells...)
	}
	return rep, nil
}

func coverageText(c *float64) string {
	if c == nil {
		return ""
	}
	return fmt.Sprintf(", coverage %.3f", *c)
}

func spreadText(r *float64) string {
	if r == nil {
		return ""
	}
	return fmt.Sprintf(", std × %.3f", *r)
}

// harness holds what the runs share: the base config, a scratch folder and
// the tuned weights.
type harness struct {
	opt    Options
	cfg    *configs.Config
	tmp    string
	lambda map[string]float64
}

func newHarness(opt Options) (*harness, error) {
	if len(opt.Tests) == 0 {
		return nil, errors.New("quality: no test folders")
	}
	if len(opt.Methods) == 0 {
		return nil, errors.New("quality: no methods")
	}
	cfg := configs.Default()
	if opt.Config != nil {
		c := *opt.Config
		cfg = &c
	}
	for _, m := range opt.Methods {
		if m == BartPics {
			if opt.Bart == "" {
				return nil, errors.New("quality: bart-pics needs the bart executable")
			}
			continue
		}
		if _, ok := configs.LookupMethod(m); !ok {
			return nil, fmt.Errorf("quality: unknown method %q (want %s or %s)", m, strings.Join(configs.Methods, ", "), BartPics)
		}
	}
	// Outputs are NumPy arrays only, read back and deleted.
	cfg.Output = configs.Output{NPY: true}
	tmp, err := os.MkdirTemp("", "kspaced-quality-")
	if err != nil {
		return nil, err
	}
	return &harness{opt: opt, cfg: cfg, tmp: tmp}, nil
}

func (h *harness) close() {
	if h.opt.KeepTemporaries {
		h.logf("scratch folder kept: %s\n", h.tmp)
		return
	}
	os.RemoveAll(h.tmp)
}

func (h *harness) logf(format string, a ...any) {
	if h.opt.Log != nil {
		fmt.Fprintf(h.opt.Log, format, a...)
	}
}

// recon is one file's reconstruction under one method: images and (for
// sampling methods) magnitude std, [slice][row][col].
type recon struct {
	img     []complex64
	std     []float32
	samples int // behind std
	seconds float64
	spread  []*float64 // the report's spread_ratio, per slice
}

// reconstruct runs method m (weight lambda where it has one) on the file.
func (h *harness) reconstruct(ctx context.Context, path, m string, lambda float64) (*recon, error) {
	if m == BartPics {
		return h.bart(ctx, path, []float64{lambda})
	}
	cfg := *h.cfg
	cfg.Recon.Method = m
	if m == "l1-wavelet" && lambda > 0 {
		cfg.Recon.Lambda = lambda
	}
	out, err := os.MkdirTemp(h.tmp, "run-")
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(out)
	start := time.Now()
	rep, err := pipeline.Run(ctx, pipeline.Job{ID: "quality", Inputs: []string{path}, Config: &cfg}, out, nil)
	if err != nil {
		return nil, err
	}
	r := &recon{seconds: time.Since(start).Seconds(), samples: cfg.Recon.Sampler.Samples, spread: rep.SpreadRatio}
	for _, o := range rep.Outputs {
		a, err := kspaceio.ReadNPY(o)
		if err != nil {
			return nil, err
		}
		if strings.HasSuffix(o, "_std.npy") {
			r.std = make([]float32, len(a.Data))
			for i, v := range a.Data {
				r.std[i] = real(v)
			}
		} else {
			r.img = a.Data
		}
	}
	if r.img == nil {
		return nil, fmt.Errorf("pipeline wrote no image (outputs %v)", rep.Outputs)
	}
	return r, nil
}

// truth is a file's NAME_truth.npy, [slice][row][col].
type truth struct {
	mag                []float32
	slices, rows, cols int
}

func readTruth(path string) (*truth, error) {
	a, err := kspaceio.ReadNPY(pipeline.TruthPath(path))
	if err != nil {
		return nil, fmt.Errorf("truth of %s: %w", path, err)
	}
	t := &truth{slices: 1}
	switch len(a.Shape) {
	case 2:
		t.rows, t.cols = a.Shape[0], a.Shape[1]
	case 3:
		t.slices, t.rows, t.cols = a.Shape[0], a.Shape[1], a.Shape[2]
	default:
		return nil, fmt.Errorf("truth of %s: shape %v, want [rows, cols] or [slices, rows, cols]", path, a.Shape)
	}
	t.mag = make([]float32, len(a.Data))
	mri.Magnitude(t.mag, a.Data)
	return t, nil
}

// scoreAll scores every slice of r against t.
func scoreAll(name string, t *truth, r *recon) ([]Score, error) {
	n := t.rows * t.cols
	if len(r.img) != len(t.mag) || (r.std != nil && len(r.std) != len(t.mag)) {
		return nil, fmt.Errorf("reconstruction has %d pixels, truth %d×%d×%d", len(r.img), t.slices, t.rows, t.cols)
	}
	var out []Score
	for s := 0; s < t.slices; s++ {
		var std []float32
		if r.std != nil {
			std = r.std[s*n : (s+1)*n]
		}
		sc, err := score(t.mag[s*n:(s+1)*n], r.img[s*n:(s+1)*n], std, r.samples, t.rows, t.cols)
		if err != nil {
			return nil, err
		}
		sc.Scan = name
		if t.slices > 1 {
			sc.Scan = fmt.Sprintf("%s[%d]", name, s)
		}
		sc.Seconds = r.seconds / float64(t.slices)
		if s < len(r.spread) {
			sc.SpreadRatio = r.spread[s]
		}
		out = append(out, sc)
	}
	return out, nil
}

// score compares the magnitude of img with the truth magnitude tm.
// std comes from samples posterior samples.
func score(tm []float32, img []complex64, std []float32, samples, rows, cols int) (Score, error) {
	mag := make([]float32, len(img))
	mri.Magnitude(mag, img)
	dr := mri.MaxOf(tm)
	if !(dr > 0) {
		return Score{}, errors.New("truth is all zero")
	}
	var sc Score
	var err error
	if sc.PSNR, err = mri.PSNR(tm, mag, dr); err != nil {
		return sc, err
	}
	if sc.SSIM, err = mri.SSIM(tm, mag, rows, cols, dr); err != nil {
		return sc, err
	}
	if std != nil {
		c, cn := Coverage(tm, mag, std, posterior.IntervalWidth(samples, 0.90)), Coverage(tm, mag, std, 1.645)
		sc.Coverage, sc.CoverageNormal = &c, &cn
	}
	return sc, nil
}

// Coverage is the fraction of foreground pixels (truth > 0.1·max) whose
// magnitude error lies within ±k·std (k = posterior.IntervalWidth for a
// 90 % interval of the samples behind std).
func Coverage(truth, mean, std []float32, k float64) float64 {
	thr := 0.1 * mri.MaxOf(truth)
	var in, fg int
	for i, t := range truth {
		if float64(t) <= thr {
			continue
		}
		fg++
		if math.Abs(float64(mean[i])-float64(t)) <= k*float64(std[i]) {
			in++
		}
	}
	if fg == 0 {
		return math.NaN()
	}
	return float64(in) / float64(fg)
}

// scans lists the k-space files of dir that have a truth companion, at
// most max of them (0: all) spread evenly over the name order.
func scans(dir string, max int) ([]string, error) {
	all, err := pipeline.KSpaceCandidates([]string{dir})
	if err != nil {
		return nil, err
	}
	var files []string
	for _, f := range all {
		if _, err := os.Stat(pipeline.TruthPath(f)); err == nil {
			files = append(files, f)
		}
	}
	if len(files) == 0 {
		return nil, fmt.Errorf("%s: no k-space file with a NAME_truth.npy companion", dir)
	}
	return spreadOver(files, max), nil
}

// spreadOver keeps at most max of files (0: all), spread evenly over their
// order.
func spreadOver(files []string, max int) []string {
	if max <= 0 || max >= len(files) {
		return files
	}
	pick := make([]string, max)
	for i := range pick {
		pick[i] = files[i*len(files)/max]
	}
	return pick
}
