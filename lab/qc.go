package lab

import (
	"context"
	"encoding/json"
	"fmt"
	"image"
	_ "image/png" // the non-brain photographs
	"io"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"sort"

	"github.com/kspaced/kspaced/configs"
	"github.com/kspaced/kspaced/mri"
	"github.com/kspaced/kspaced/mri/kspaceio"
	"github.com/kspaced/kspaced/mri/simulate"
	"github.com/kspaced/kspaced/pipeline"
	"github.com/kspaced/kspaced/priors"
	"github.com/kspaced/kspaced/qc"
	"gonum.org/v1/gonum/stat/distuv"
)

// The QC evaluation of docs/bench/qc.md: held-out in-distribution scans
// simulated as the default-prior archive simulates its test set (axial
// slices of the held-out slab, 128², 220 mm field of view, 8 coils, random
// column masks at 4× and 8× with 8 % centre, noise 0.01 of the peak), and
// failure cases made from them. Calibration uses the odd slices of the
// slab, evaluation the even ones (the archive's test/m128-* slices): both
// never entered training.

// QC classes, in table order.
const (
	ClassInDist      = "in-distribution"
	ClassInDistNoise = "in-distribution, noise declared"
	ClassInDistSNR   = "in-distribution, other noise levels"
	ClassMotion      = "motion"
	ClassCoils       = "wrong coil maps"
	ClassMask        = "mask lies"
	ClassNoise       = "noise heavier than declared"
	ClassPhantom     = "phantom"
	ClassNonBrain    = "non-brain image"
)

// QCClasses lists the classes; the first four are in-distribution.
var QCClasses = []string{ClassInDist, ClassInDistNoise, ClassInDistSNR, ClassArchive, ClassMotion, ClassCoils, ClassMask, ClassNoise, ClassPhantom, ClassNonBrain}

// slabs are the held-out axial slabs [lo, hi) of configs/prior-default.yaml
// (the archive's test/ names: ch2 98…112, ch2better 193…207).
var slabs = map[string][2]int{"ch2": {98, 114}, "ch2better": {193, 209}}

// NonBrainDir holds the photographs of python3-skimage (camera, coins, …).
const NonBrainDir = "/usr/lib/python3/dist-packages/skimage/data"

var nonBrain = []string{"camera.png", "coins.png", "moon.png", "brick.png", "grass.png", "gravel.png", "text.png", "page.png"}

// QCOptions configure the evaluation.
type QCOptions struct {
	// PerVolume caps the slab slices used per volume, acceleration and role
	// (0: all 8).
	PerVolume int
	// Accelerations of the random masks (default 4 and 8).
	Accelerations []float64
	// Priors are checkpoints whose typicality is measured (by base name in
	// the results).
	Priors []string
	// Calibration, when set, is used instead of calibrating on the odd
	// slices (the shipped calibration).
	Calibration map[string]*qc.Calibration // by prior base name; "" for classical
	Recon       configs.Recon
	Log         io.Writer
}

// QCCase is one evaluated scan.
type QCCase struct {
	Class, Name string
	// Result holds the measures, typicality for the first prior.
	Result *qc.Result
	// Typicality by prior base name.
	Typicality map[string]*qc.Typicality
}

// QCEvaluation is the outcome: calibration and evaluated cases.
type QCEvaluation struct {
	Calibration map[string]*qc.Calibration // "" classical, else prior base name
	// CalibrationCases are the measures the calibration was fitted to.
	CalibrationCases []QCCase
	Cases            []QCCase
	Seconds          float64
}

type labPrior struct {
	name string
	d    priors.Denoiser
}

// prepare fills opt's defaults and loads its priors.
func (opt *QCOptions) prepare() ([]labPrior, error) {
	if len(opt.Accelerations) == 0 {
		opt.Accelerations = []float64{4, 8}
	}
	if opt.Log == nil {
		opt.Log = io.Discard
	}
	var prs []labPrior
	for _, p := range opt.Priors {
		d, _, err := priors.LoadPrior(p)
		if err != nil {
			return nil, err
		}
		prs = append(prs, labPrior{filepath.Base(p), d})
	}
	return prs, nil
}

// QCEvidence runs the evaluation.
func QCEvidence(ctx context.Context, opt QCOptions) (*QCEvaluation, error) {
	prs, err := opt.prepare()
	if err != nil {
		return nil, err
	}
	vols := map[string]*simulate.Volume{}
	for name := range slabs {
		v, err := simulate.ReadNIfTI(simulate.Volumes[name])
		if err != nil {
			return nil, err
		}
		vols[name] = v
	}
	ev := &QCEvaluation{Calibration: opt.Calibration}
	if ev.Calibration == nil {
		cal, cases, err := qcCalibrate(ctx, opt, vols, prs)
		if err != nil {
			return nil, err
		}
		ev.Calibration, ev.CalibrationCases = cal, cases
	}
	cases, err := qcEvaluate(ctx, opt, vols, prs)
	if err != nil {
		return nil, err
	}
	for i := range cases {
		applyCase(&cases[i], ev.Calibration, prs)
	}
	ev.Cases = cases
	return ev, nil
}

// brainScan is one in-distribution acquisition with its truth.
type brainScan struct {
	name  string
	truth []complex64
	scan  *mri.Scan
	acc   float64
	seed  uint64
}

const qcN, qcCoils, qcNoise = 128, 8, 0.01

// noiseRange is the noise (of the image peak) of the calibration scans and
// of the "other noise levels" class, log-uniform: the archive's training
// range widened to the default `kspaced simulate` level (0.005).
var noiseRange = [2]float64{0.004, 0.03}

func randomNoise(rng *rand.Rand) float64 {
	return noiseRange[0] * math.Pow(noiseRange[1]/noiseRange[0], rng.Float64())
}

// brainScans simulates the slab slices of the given parity (0 even:
// evaluation, at the test recipe's noise; 1 odd: calibration, at noise
// levels drawn from noiseRange so the calibration spans SNRs).
func brainScans(opt QCOptions, vols map[string]*simulate.Volume, parity int) ([]brainScan, error) {
	var out []brainScan
	names := []string{"ch2", "ch2better"}
	for _, vn := range names {
		lo, hi := slabs[vn][0], slabs[vn][1]
		for _, acc := range opt.Accelerations {
			k := 0
			for z := lo + parity; z < hi; z += 2 {
				if opt.PerVolume > 0 && k >= opt.PerVolume {
					break
				}
				k++
				seed := uint64(z)*1000 + uint64(acc)*10 + uint64(parity)
				rng := rand.New(rand.NewPCG(seed, 16))
				mag, err := simulate.Anatomy(vols[vn], 2, z, simulate.View{Rows: qcN, Cols: qcN, PixelMM: 220.0 / qcN})
				if err != nil {
					return nil, err
				}
				img := withPhase(mag, rng)
				noise := qcNoise
				if parity == 1 {
					noise = randomNoise(rng)
				}
				sc, err := acquire(img, acc, seed, noise, rng)
				if err != nil {
					return nil, err
				}
				out = append(out, brainScan{name: fmt.Sprintf("%s_axial_%03d_%gx", vn, z, acc), truth: img, scan: sc, acc: acc, seed: seed})
			}
		}
	}
	return out, nil
}

// withPhase normalises a magnitude image to peak 1 and gives it a smooth phase.
func withPhase(mag []float32, rng *rand.Rand) []complex64 {
	var peak float32
	for _, m := range mag {
		peak = max(peak, m)
	}
	ph := simulate.SmoothPhase(qcN, qcN, rng)
	img := make([]complex64, len(mag))
	for i, m := range mag {
		s, c := math.Sincos(float64(ph[i]))
		r := float64(max(m, 0) / peak)
		img[i] = complex(float32(r*c), float32(r*s))
	}
	return img
}

// acquire simulates the test recipe's acquisition of img, without a noise scan.
func acquire(img []complex64, acc float64, seed uint64, noise float64, rng *rand.Rand) (*mri.Scan, error) {
	mask, err := mri.RandomMask(qcN, qcN, 0.08, acc, seed)
	if err != nil {
		return nil, err
	}
	sc, err := simulate.KSpace(img, simulate.CoilMaps(qcCoils, qcN, qcN), qcCoils, qcN, qcN, mask, noise, rng)
	if err != nil {
		return nil, err
	}
	sc.NoiseCov = nil
	return sc, nil
}

func cloneScan(s *mri.Scan) *mri.Scan {
	c := *s
	c.KSpace = append([]complex64(nil), s.KSpace...)
	c.Mask = append([]float32(nil), s.Mask...)
	if s.NoiseCov != nil {
		c.NoiseCov = append([]complex64(nil), s.NoiseCov...)
	}
	return &c
}

func declare(s *mri.Scan, variance float64) {
	s.NoiseCov = make([]complex64, s.Coils*s.Coils)
	for c := 0; c < s.Coils; c++ {
		s.NoiseCov[c*s.Coils+c] = complex(float32(variance), 0)
	}
}

// motion translates the object by a random (dy, dx) of up to 3 pixels
// during a random 30 % of the sampled columns: each such column gets the
// k-space phase ramp of its shift.
func motion(s *mri.Scan, rng *rand.Rand) {
	n := s.Rows * s.Cols
	for c := 0; c < s.Cols; c++ {
		if s.Mask[c] == 0 || rng.Float64() >= 0.3 {
			continue
		}
		dy, dx := 6*rng.Float64()-3, 6*rng.Float64()-3
		for r := 0; r < s.Rows; r++ {
			ky := float64(r - s.Rows/2)
			kx := float64(c - s.Cols/2)
			ph := -2 * math.Pi * (ky*dy/float64(s.Rows) + kx*dx/float64(s.Cols))
			sn, cs := math.Sincos(ph)
			f := complex64(complex(cs, sn))
			for co := 0; co < s.Coils; co++ {
				s.KSpace[co*n+r*s.Cols+c] *= f
			}
		}
	}
}

// shiftMaps moves coil maps circularly by (dy, dx) pixels: maps calibrated
// before the patient moved.
func shiftMaps(maps []complex64, coils, rows, cols, dy, dx int) []complex64 {
	out := make([]complex64, len(maps))
	n := rows * cols
	for c := 0; c < coils; c++ {
		for r := 0; r < rows; r++ {
			for q := 0; q < cols; q++ {
				out[c*n+((r+dy+rows)%rows)*cols+(q+dx+cols)%cols] = maps[c*n+r*cols+q]
			}
		}
	}
	return out
}

// loadGray reads a PNG as grey levels resized to n×n.
func loadGray(path string, n int) ([]float32, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	im, _, err := image.Decode(f)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	b := im.Bounds()
	h, w := b.Dy(), b.Dx()
	s := min(h, w) // centre square
	g := make([]float32, s*s)
	for r := 0; r < s; r++ {
		for c := 0; c < s; c++ {
			cr, cg, cb, _ := im.At(b.Min.X+(w-s)/2+c, b.Min.Y+(h-s)/2+r).RGBA()
			g[r*s+c] = float32(0.299*float64(cr)+0.587*float64(cg)+0.114*float64(cb)) / 65535
		}
	}
	return simulate.Resize(g, s, s, n, n), nil
}

// measureCase reconstructs sc with CG-SENSE (maps replaced by mapsFn when
// set) and measures it, with the typicality of every prior.
func measureCase(ctx context.Context, opt QCOptions, class, name string, sc *mri.Scan, mapsFn func([]complex64) []complex64, prs []labPrior) (QCCase, error) {
	p, err := pipeline.Prepare(ctx, sc, opt.Recon.CoilMaps)
	if err != nil {
		return QCCase{}, fmt.Errorf("%s: %w", name, err)
	}
	if mapsFn != nil {
		p.Maps = mapsFn(p.Maps)
		p.Op = mri.NewSENSE(p.Maps, sc.Coils, sc.Rows, sc.Cols, sc.Mask)
	}
	x, _, _, err := pipeline.ReconstructClassical(ctx, p, &opt.Recon)
	if err != nil {
		return QCCase{}, fmt.Errorf("%s: %w", name, err)
	}
	r, err := qc.Measure(p.QCSlice(x, nil), opt.Recon.Method, nil, &qc.Calibration{})
	if err != nil {
		return QCCase{}, fmt.Errorf("%s: %w", name, err)
	}
	cs := QCCase{Class: class, Name: name, Result: r, Typicality: map[string]*qc.Typicality{}}
	for _, pr := range prs {
		t, err := qc.TypicalityScore(pr.d, qc.PriorImage(x, p.Scale), sc.Rows, sc.Cols, qc.DefaultTypicality)
		if err != nil {
			return QCCase{}, fmt.Errorf("%s: %s: %w", name, pr.name, err)
		}
		cs.Typicality[pr.name] = t
	}
	return cs, nil
}

// Recalibrate calibrates anew on the calibration slices (with opt's priors)
// and flags the cases of ev again: for a change of the calibration model
// without re-running the evaluation.
func (ev *QCEvaluation) Recalibrate(ctx context.Context, opt QCOptions) error {
	prs, err := opt.prepare()
	if err != nil {
		return err
	}
	vols := map[string]*simulate.Volume{}
	for name := range slabs {
		v, err := simulate.ReadNIfTI(simulate.Volumes[name])
		if err != nil {
			return err
		}
		vols[name] = v
	}
	cal, cases, err := qcCalibrate(ctx, opt, vols, prs)
	if err != nil {
		return err
	}
	ev.Calibration, ev.CalibrationCases = cal, cases
	ev.Reapply(prs[0].name)
	return nil
}

func qcCalibrate(ctx context.Context, opt QCOptions, vols map[string]*simulate.Volume, prs []labPrior) (map[string]*qc.Calibration, []QCCase, error) {
	scans, err := brainScans(opt, vols, 1)
	if err != nil {
		return nil, nil, err
	}
	var accs, snrs []float64
	var cases []QCCase
	typ := map[string][]float64{}
	for i, b := range scans {
		cs, err := measureCase(ctx, opt, ClassInDist, b.name, cloneScan(b.scan), nil, prs)
		if err != nil {
			return nil, nil, err
		}
		cases = append(cases, cs)
		accs = append(accs, cs.Result.DataConsistency.Acceleration)
		snrs = append(snrs, cs.Result.DataConsistency.SNR)
		if cs.Result.LineMotion == nil || cs.Result.EdgeSparsity == nil {
			return nil, nil, fmt.Errorf("%s: line motion or edge sparsity not measured", b.name)
		}
		for n, t := range cs.Typicality {
			typ[n] = append(typ[n], t.Score)
		}
		fmt.Fprintf(opt.Log, "calibration %d/%d %s ratio %.3f\n", i+1, len(scans), b.name, cs.Result.DataConsistency.Ratio)
	}
	src := fmt.Sprintf("lab.QCEvidence: %d held-out scans (odd axial slices of the test slab of configs/prior-default.yaml, 128², 8 coils, random masks %v×, noise %g–%g log-uniform), %s", len(scans), opt.Accelerations, noiseRange[0], noiseRange[1], opt.Recon.Method)
	classical, err := fitMethod(opt.Recon.Method, cases)
	if err != nil {
		return nil, nil, err
	}
	classical.Source = src
	out := map[string]*qc.Calibration{"": classical}
	for _, pr := range prs {
		d, err := qc.FitDistVs(typ[pr.name], accs, snrs)
		if err != nil {
			return nil, nil, err
		}
		set := qc.DefaultTypicality
		out[pr.name] = &qc.Calibration{Source: src, Z: qc.DefaultZ, Prior: pr.name, Settings: &set, Typicality: &d}
	}
	return out, cases, nil
}

func qcEvaluate(ctx context.Context, opt QCOptions, vols map[string]*simulate.Volume, prs []labPrior) ([]QCCase, error) {
	scans, err := brainScans(opt, vols, 0)
	if err != nil {
		return nil, err
	}
	var out []QCCase
	add := func(class, name string, sc *mri.Scan, mapsFn func([]complex64) []complex64) error {
		cs, err := measureCase(ctx, opt, class, name, sc, mapsFn, prs)
		if err != nil {
			return err
		}
		out = append(out, cs)
		fmt.Fprintf(opt.Log, "%-32s %-26s acc %4.1f ratio %8.3f order %5.2f empty %3d", class, name, cs.Result.DataConsistency.Acceleration, cs.Result.DataConsistency.Ratio,
			cs.Result.DataConsistency.LineOrder, cs.Result.DataConsistency.EmptyLines)
		if lm := cs.Result.LineMotion; lm != nil {
			fmt.Fprintf(opt.Log, " moved %.2g", lm.Explained)
		}
		if e := cs.Result.EdgeSparsity; e != nil {
			fmt.Fprintf(opt.Log, " edges %.2f", e.Score)
		}
		if cs.Result.Noise != nil {
			fmt.Fprintf(opt.Log, " noise %.2f", cs.Result.Noise.Ratio)
		}
		for _, pr := range prs {
			fmt.Fprintf(opt.Log, " %s %.4f", pr.name, cs.Typicality[pr.name].Score)
		}
		fmt.Fprintln(opt.Log)
		return nil
	}
	for i, b := range scans {
		rng := rand.New(rand.NewPCG(b.seed, 1616))
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		if err := add(ClassInDist, b.name, cloneScan(b.scan), nil); err != nil {
			return nil, err
		}
		sc := cloneScan(b.scan)
		declare(sc, qcNoise*qcNoise)
		if err := add(ClassInDistNoise, b.name, sc, nil); err != nil {
			return nil, err
		}
		noise := randomNoise(rng)
		if sc, err = acquire(b.truth, b.acc, b.seed, noise, rng); err != nil {
			return nil, err
		}
		if err := add(ClassInDistSNR, fmt.Sprintf("%s noise %.4f", b.name, noise), sc, nil); err != nil {
			return nil, err
		}
		sc = cloneScan(b.scan)
		motion(sc, rng)
		if err := add(ClassMotion, b.name, sc, nil); err != nil {
			return nil, err
		}
		d := qcN / 16
		if err := add(ClassCoils, b.name, cloneScan(b.scan), func(m []complex64) []complex64 {
			return shiftMaps(m, qcCoils, qcN, qcN, d, d)
		}); err != nil {
			return nil, err
		}
		sc = cloneScan(b.scan)
		if sc.Mask, err = mri.RandomMask(qcN, qcN, 0.08, b.acc, b.seed+1); err != nil {
			return nil, err
		}
		if err := add(ClassMask, b.name, sc, nil); err != nil {
			return nil, err
		}
		sc = cloneScan(b.scan)
		extra := math.Sqrt(3) * qcNoise / math.Sqrt2 // to twice the std in all
		for j := range sc.KSpace {
			if sc.Mask[j%(qcN*qcN)] != 0 {
				sc.KSpace[j] += complex(float32(extra*rng.NormFloat64()), float32(extra*rng.NormFloat64()))
			}
		}
		declare(sc, qcNoise*qcNoise)
		if err := add(ClassNoise, b.name, sc, nil); err != nil {
			return nil, err
		}
		var ph []float32
		name := "shepp-logan"
		if i%2 == 0 {
			ph = simulate.SheppLogan(qcN)
		} else {
			ph, name = simulate.RandomEllipses(qcN, rng), "random ellipses"
		}
		if sc, err = acquire(withPhase(ph, rng), b.acc, b.seed+2, qcNoise, rng); err != nil {
			return nil, err
		}
		if err := add(ClassPhantom, fmt.Sprintf("%s %gx", name, b.acc), sc, nil); err != nil {
			return nil, err
		}
		photo := nonBrain[i%len(nonBrain)]
		g, err := loadGray(filepath.Join(NonBrainDir, photo), qcN)
		if err != nil {
			return nil, err
		}
		if sc, err = acquire(withPhase(g, rng), b.acc, b.seed+3, qcNoise, rng); err != nil {
			return nil, err
		}
		if err := add(ClassNonBrain, fmt.Sprintf("%s %gx", photo, b.acc), sc, nil); err != nil {
			return nil, err
		}
	}
	return out, nil
}

// applyCase flags a case with the classical calibration and the first prior's.
func applyCase(cs *QCCase, cal map[string]*qc.Calibration, prs []labPrior) {
	c := cal[""]
	if len(prs) > 0 {
		cs.Result.Typicality = cs.Typicality[prs[0].name]
		c = c.Merge(cal[prs[0].name])
	}
	cs.Result.Apply(c)
}

// Reapply flags every case again with ev's calibration (after a change of
// the flag rules), typicality under the prior named first (a base name).
func (ev *QCEvaluation) Reapply(prior string) {
	for i := range ev.Cases {
		applyCase(&ev.Cases[i], ev.Calibration, []labPrior{{name: prior}})
	}
}

// QCRow is one line of the flag-rate table.
type QCRow struct {
	Class   string
	N       int
	Flagged int
	Codes   map[string]int
}

// Rate is the flagged share.
func (r QCRow) Rate() float64 { return float64(r.Flagged) / float64(max(r.N, 1)) }

// Table counts flags per class, in QCClasses order.
func (ev *QCEvaluation) Table() []QCRow {
	rows := map[string]*QCRow{}
	for _, c := range ev.Cases {
		r := rows[c.Class]
		if r == nil {
			r = &QCRow{Class: c.Class, Codes: map[string]int{}}
			rows[c.Class] = r
		}
		r.N++
		if c.Result.Flagged() {
			r.Flagged++
		}
		for _, f := range c.Result.Flags {
			r.Codes[f.Code]++
		}
	}
	var out []QCRow
	for _, cl := range QCClasses {
		if r := rows[cl]; r != nil {
			out = append(out, *r)
		}
	}
	return out
}

// checkQCClaims asserts what docs/bench/qc.md reports, as one-sided
// binomial tests at the 5 % level (so a small run can fail only on evidence):
// the in-distribution flag rate is at most 5 % and each failure class's at
// least 90 % (the goals).
func checkQCClaims(rows []QCRow) error {
	if len(rows) == 0 {
		return fmt.Errorf("no results")
	}
	const alpha = 0.05
	below := func(r QCRow, p float64) bool { // evidence the rate is below p
		return r.N > 0 && distuv.Binomial{N: float64(r.N), P: p}.CDF(float64(r.Flagged)) < alpha
	}
	above := func(r QCRow, p float64) bool { // evidence the rate is above p
		return r.N > 0 && r.Flagged > 0 && 1-distuv.Binomial{N: float64(r.N), P: p}.CDF(float64(r.Flagged-1)) < alpha
	}
	seen := map[string]bool{}
	for _, r := range rows {
		seen[r.Class] = true
		switch {
		case inDistribution(r.Class):
			if above(r, 0.05) {
				return fmt.Errorf("%s: %d of %d flagged (goal ≤ 5 %%)", r.Class, r.Flagged, r.N)
			}
		case below(r, 0.9):
			return fmt.Errorf("%s: %d of %d flagged (goal ≥ 90 %%)", r.Class, r.Flagged, r.N)
		}
	}
	for _, c := range QCClasses {
		if !seen[c] && c != ClassArchive { // the archive is optional
			return fmt.Errorf("class %s missing", c)
		}
	}
	return nil
}

func inDistribution(class string) bool {
	return class == ClassInDist || class == ClassInDistNoise || class == ClassInDistSNR || class == ClassArchive
}

// sortedKeys lists a map's keys in order.
func sortedKeys(m map[string]int) []string {
	k := make([]string, 0, len(m))
	for s := range m {
		k = append(k, s)
	}
	sort.Strings(k)
	return k
}

// Save writes the evaluation as JSON (cases, calibration) to path.
func (ev *QCEvaluation) Save(path string) error {
	raw, err := json.MarshalIndent(ev, "", " ")
	if err != nil {
		return err
	}
	return os.WriteFile(path, raw, 0o644)
}

// LoadQCEvaluation reads what Save wrote.
func LoadQCEvaluation(path string) (*QCEvaluation, error) {
	raw, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	var ev QCEvaluation
	if err := json.Unmarshal(raw, &ev); err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return &ev, nil
}

// ClassArchive is the archive's own held-out test files (in-distribution).
const ClassArchive = "archive test files"

// QCArchive measures the k-space files of dirs (the default-prior archive's
// test/m128-4x and m128-8x) as in-distribution scans, flagged with cal.
func QCArchive(ctx context.Context, opt QCOptions, dirs []string) ([]QCCase, error) {
	var prs []labPrior
	for _, p := range opt.Priors {
		d, _, err := priors.LoadPrior(p)
		if err != nil {
			return nil, err
		}
		prs = append(prs, labPrior{filepath.Base(p), d})
	}
	var out []QCCase
	for _, dir := range dirs {
		files, err := filepath.Glob(filepath.Join(dir, "*.h5"))
		if err != nil {
			return nil, err
		}
		for _, f := range files {
			v, err := kspaceio.Read(f)
			if err != nil {
				return nil, err
			}
			cs, err := measureCase(ctx, opt, ClassArchive, filepath.Base(dir)+"/"+filepath.Base(f), &v.Slices[0], nil, prs)
			if err != nil {
				return nil, err
			}
			applyCase(&cs, opt.Calibration, prs)
			fmt.Fprintf(opt.Log, "%s %s ratio %.3f threshold %.3f flags %v\n", cs.Class, cs.Name, cs.Result.DataConsistency.Ratio, cs.Result.DataConsistency.Threshold, cs.Result.Flags)
			out = append(out, cs)
		}
	}
	return out, nil
}

// DevelopmentCases are the in-distribution calibration scans and motion,
// wrong-coil-map and phantom cases made from the calibration slices (never
// from the evaluation ones), measured without priors: the data behind
// qc.MotionOrder and the choice of the line-motion and edge-sparsity
// measures (docs/bench/qc.md).
func DevelopmentCases(ctx context.Context, opt QCOptions) ([]QCCase, error) {
	if len(opt.Accelerations) == 0 {
		opt.Accelerations = []float64{4, 8}
	}
	vols := map[string]*simulate.Volume{}
	for name := range slabs {
		v, err := simulate.ReadNIfTI(simulate.Volumes[name])
		if err != nil {
			return nil, err
		}
		vols[name] = v
	}
	scans, err := brainScans(opt, vols, 1)
	if err != nil {
		return nil, err
	}
	var out []QCCase
	add := func(class, name string, sc *mri.Scan, mapsFn func([]complex64) []complex64) error {
		cs, err := measureCase(ctx, opt, class, name, sc, mapsFn, nil)
		out = append(out, cs)
		return err
	}
	for i, b := range scans {
		if err := add(ClassInDist, b.name, cloneScan(b.scan), nil); err != nil {
			return nil, err
		}
		rng := rand.New(rand.NewPCG(b.seed, 1717))
		sc := cloneScan(b.scan)
		motion(sc, rng)
		if err := add(ClassMotion, b.name, sc, nil); err != nil {
			return nil, err
		}
		d := qcN / 16
		if err := add(ClassCoils, b.name, cloneScan(b.scan), func(m []complex64) []complex64 {
			return shiftMaps(m, qcCoils, qcN, qcN, d, d)
		}); err != nil {
			return nil, err
		}
		rng = rand.New(rand.NewPCG(b.seed, 1818))
		ph, name := simulate.SheppLogan(qcN), "shepp-logan"
		if i%2 == 1 {
			ph, name = simulate.RandomEllipses(qcN, rng), "random ellipses"
		}
		if sc, err = acquire(withPhase(ph, rng), b.acc, b.seed+2, randomNoise(rng), rng); err != nil {
			return nil, err
		}
		if err := add(ClassPhantom, fmt.Sprintf("%s %gx", name, b.acc), sc, nil); err != nil {
			return nil, err
		}
	}
	return out, nil
}

// MethodCalibration calibrates the data consistency, line motion and edge
// sparsity of other classical methods on the calibration slices, as for
// CG-SENSE, and counts the in-distribution evaluation scans (noise 0.01)
// each would flag. It returns the calibration parts by method.
func MethodCalibration(ctx context.Context, opt QCOptions, methods []string) (map[string]*qc.Calibration, map[string][2]int, error) {
	if len(opt.Accelerations) == 0 {
		opt.Accelerations = []float64{4, 8}
	}
	vols := map[string]*simulate.Volume{}
	for name := range slabs {
		v, err := simulate.ReadNIfTI(simulate.Volumes[name])
		if err != nil {
			return nil, nil, err
		}
		vols[name] = v
	}
	cal, err := brainScans(opt, vols, 1)
	if err != nil {
		return nil, nil, err
	}
	eval, err := brainScans(opt, vols, 0)
	if err != nil {
		return nil, nil, err
	}
	dists := map[string]*qc.Calibration{}
	flagged := map[string][2]int{}
	for _, m := range methods {
		o := opt
		o.Recon.Method = m
		var cases []QCCase
		for _, b := range cal {
			cs, err := measureCase(ctx, o, ClassInDist, b.name, cloneScan(b.scan), nil, nil)
			if err != nil {
				return nil, nil, err
			}
			if cs.Result.LineMotion == nil || cs.Result.EdgeSparsity == nil {
				return nil, nil, fmt.Errorf("%s %s: line motion or edge sparsity not measured", m, b.name)
			}
			cases = append(cases, cs)
		}
		c, err := fitMethod(m, cases)
		if err != nil {
			return nil, nil, err
		}
		dists[m] = c
		n := 0
		for _, b := range eval {
			cs, err := measureCase(ctx, o, ClassInDist, b.name, cloneScan(b.scan), nil, nil)
			if err != nil {
				return nil, nil, err
			}
			cs.Result.Apply(c)
			if cs.Result.Flagged() {
				n++
			}
		}
		flagged[m] = [2]int{n, len(eval)}
		fmt.Fprintf(opt.Log, "%s: data consistency %+v, line motion %+v, edge sparsity %+v; in-distribution flagged %d of %d\n",
			m, c.DataConsistency[m], c.LineMotion[m], c.EdgeSparsity[m], n, len(eval))
	}
	return dists, flagged, nil
}

// fitMethod fits method m's data consistency, line motion and edge
// sparsity to in-distribution cases, each log-linear in acceleration and SNR.
func fitMethod(m string, cases []QCCase) (*qc.Calibration, error) {
	var ratios, moved, edges, accs, snrs []float64
	for _, cs := range cases {
		r := cs.Result
		ratios, accs, snrs = append(ratios, r.DataConsistency.Ratio), append(accs, r.DataConsistency.Acceleration), append(snrs, r.DataConsistency.SNR)
		moved, edges = append(moved, r.LineMotion.Explained), append(edges, r.EdgeSparsity.Score)
	}
	c := &qc.Calibration{Z: qc.DefaultZ, DataConsistency: map[string]qc.Dist{}, LineMotion: map[string]qc.Dist{}, EdgeSparsity: map[string]qc.Dist{}}
	for _, part := range []struct {
		name   string
		values []float64
		into   map[string]qc.Dist
	}{{"data consistency", ratios, c.DataConsistency}, {"line motion", moved, c.LineMotion}, {"edge sparsity", edges, c.EdgeSparsity}} {
		d, err := qc.FitDistVs(part.values, accs, snrs)
		if err != nil {
			return nil, fmt.Errorf("%s %s: %w", m, part.name, err)
		}
		part.into[m] = d
	}
	return c, nil
}
