package qc

import (
	"math"
	"math/rand/v2"
	"os"
	"strings"
	"testing"

	"github.com/kspaced/kspaced/internal/testutil"
	"github.com/kspaced/kspaced/mri"
	"github.com/kspaced/kspaced/mri/simulate"
	"github.com/kspaced/kspaced/priors"
)

// testSlice is a small multi-coil slice with a column mask, data y = A x + n
// with white noise of per-sample variance noiseVar.
func testSlice(t *testing.T, rng *rand.Rand, noiseVar float64) *Slice {
	t.Helper()
	const coils, rows, cols = 4, 16, 16
	maps := simulate.CoilMaps(coils, rows, cols)
	mask, err := mri.RandomMask(rows, cols, 0.25, 2, rng.Uint64())
	if err != nil {
		t.Fatal(err)
	}
	x := make([]complex64, rows*cols)
	for i := range x {
		x[i] = complex(float32(rng.NormFloat64()), float32(rng.NormFloat64()))
	}
	op := mri.NewSENSE(maps, coils, rows, cols, mask)
	y := make([]complex64, coils*rows*cols)
	op.Forward(y, x)
	sd := math.Sqrt(noiseVar / 2)
	for i := range y {
		if mask[i%(rows*cols)] != 0 {
			y[i] += complex(float32(sd*rng.NormFloat64()), float32(sd*rng.NormFloat64()))
		}
	}
	return &Slice{Op: op, Coils: coils, Rows: rows, Cols: cols, KSpace: y, Mask: mask, Image: x, NoiseVar: noiseVar, Scale: 1}
}

// The χ² measure equals a naive float64 computation of ‖y − A x̂‖²/σ², and
// for a fixed image and pure noise its ratio follows χ²(2m)/2m: mean 1,
// variance 1/m, and the declared tail probability.
func TestChiSquareAgainstNaiveAndAnalytic(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	s := testSlice(t, rng, 0.3)
	dc := measureConsistency(s)
	// naive: A x̂ by a direct (non-FFT) DFT in float64
	n := s.Rows * s.Cols
	maps := simulate.CoilMaps(s.Coils, s.Rows, s.Cols)
	var want float64
	m := 0
	for c := 0; c < s.Coils; c++ {
		for ky := 0; ky < s.Rows; ky++ {
			for kx := 0; kx < s.Cols; kx++ {
				if s.Mask[ky*s.Cols+kx] == 0 {
					continue
				}
				var acc complex128
				for r := 0; r < s.Rows; r++ {
					for q := 0; q < s.Cols; q++ {
						// centred orthonormal DFT
						ph := -2 * math.Pi * (float64((ky-s.Rows/2)*(r-s.Rows/2))/float64(s.Rows) + float64((kx-s.Cols/2)*(q-s.Cols/2))/float64(s.Cols))
						acc += complex128(maps[c*n+r*s.Cols+q]) * complex128(s.Image[r*s.Cols+q]) * complex(math.Cos(ph), math.Sin(ph))
					}
				}
				acc /= complex(math.Sqrt(float64(n)), 0)
				d := complex128(s.KSpace[c*n+ky*s.Cols+kx]) - acc
				want += real(d)*real(d) + imag(d)*imag(d)
				m++
			}
		}
	}
	want /= s.NoiseVar
	if dc.Samples != m || math.Abs(dc.Chi2-want) > 1e-4*want {
		t.Fatalf("chi2 %v over %d samples, naive %v over %d", dc.Chi2, dc.Samples, want, m)
	}
	// Distribution over independent noise draws.
	const draws = 400
	var sum, sum2 float64
	above := 0
	p := 0.05
	for k := 0; k < draws; k++ {
		s := testSlice(t, rng, 0.3)
		dc := measureConsistency(s)
		sum += dc.Ratio
		sum2 += dc.Ratio * dc.Ratio
		if dc.Ratio > ChiSquareUpper(p, dc.Samples) {
			above++
		}
		if pv := dc.PFixedImage; !(pv > 0 && pv < 1) {
			t.Fatalf("p value %v", pv)
		}
	}
	mean := sum / draws
	variance := sum2/draws - mean*mean
	// m varies with the random mask; about 4·16·8 = 512 samples.
	if math.Abs(mean-1) > 4*math.Sqrt(1.0/512/draws) {
		t.Errorf("mean ratio %v, want 1", mean)
	}
	if variance < 0.6/512 || variance > 1.6/512 {
		t.Errorf("ratio variance %v, want about 1/m = %v", variance, 1.0/512)
	}
	if f := float64(above) / draws; math.Abs(f-p) > 4*math.Sqrt(p*(1-p)/draws) {
		t.Errorf("%.3f of pure-noise residuals above the %.2f tail", f, p)
	}
	// Survival and Upper are inverse.
	if got := ChiSquareSurvival(ChiSquareUpper(0.001, 500), 500); math.Abs(got-0.001) > 1e-6 {
		t.Errorf("survival of the 0.001 quantile: %v", got)
	}
}

// A sampled line holding no data is counted; a mask without line structure
// has none; motion-like line corruption lowers the line order.
func TestLines(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 4))
	s := testSlice(t, rng, 1e-4)
	lines, byCol := lineLayout(s.Mask, s.Rows, s.Cols)
	if !byCol || len(lines) == 0 {
		t.Fatalf("column mask not recognised: %v %v", lines, byCol)
	}
	dc := measureConsistency(s)
	if dc.EmptyLines != 0 || dc.Lines != len(lines) {
		t.Fatalf("clean slice: %d empty of %d lines", dc.EmptyLines, dc.Lines)
	}
	n := s.Rows * s.Cols
	l := lines[0]
	for c := 0; c < s.Coils; c++ {
		for r := 0; r < s.Rows; r++ {
			s.KSpace[c*n+r*s.Cols+l] = 0
		}
	}
	if dc := measureConsistency(s); dc.EmptyLines != 1 {
		t.Errorf("one emptied line: %d empty", dc.EmptyLines)
	}
	tr := make([]float32, len(s.Mask)) // transposed: row lines
	for r := 0; r < s.Rows; r++ {
		for c := 0; c < s.Cols; c++ {
			tr[c*s.Cols+r] = s.Mask[r*s.Cols+c]
		}
	}
	if _, byCol := lineLayout(tr, s.Rows, s.Cols); byCol {
		t.Error("row mask taken for columns")
	}
	tr[0], tr[1] = 1-tr[0], 1-tr[1]
	if ls, _ := lineLayout(tr, s.Rows, s.Cols); ls != nil {
		t.Error("mask without lines given lines")
	}
	if r := spearman([]float64{1, 2, 3, 4, 5}, []float64{10, 20, 30, 40, 50}); math.Abs(r-1) > 1e-12 {
		t.Errorf("spearman of monotone data %v", r)
	}
	if r := spearman([]float64{1, 2, 3, 4, 5}, []float64{50, 40, 30, 20, 10}); math.Abs(r+1) > 1e-12 {
		t.Errorf("spearman of reversed data %v", r)
	}
}

// FitDistVs recovers a known log-linear law; Percentile and Upper agree.
func TestFitDistVs(t *testing.T) {
	rng := rand.New(rand.NewPCG(5, 6))
	var v, a, s []float64
	for i := 0; i < 4000; i++ {
		acc := []float64{2, 4, 8}[i%3]
		snr := math.Exp(3 * rng.Float64())
		v = append(v, math.Exp(0.1+0.5*math.Log(acc)+0.3*math.Log(snr)+0.2*rng.NormFloat64()))
		a, s = append(a, acc), append(s, snr)
	}
	d, err := FitDistVs(v, a, s)
	if err != nil {
		t.Fatal(err)
	}
	if math.Abs(d.Mean-0.1) > 0.03 || math.Abs(d.Slope-0.5) > 0.02 || math.Abs(d.SlopeSNR-0.3) > 0.02 || math.Abs(d.SD-0.2) > 0.01 {
		t.Fatalf("fit %+v", d)
	}
	at := d.At(4, 2)
	if math.Abs(at.Median()-math.Exp(0.1+0.5*math.Log(4)+0.3*math.Log(2))) > 0.05 {
		t.Errorf("median at acceleration 4, SNR 2: %v", at.Median())
	}
	if p := at.Percentile(at.Upper(DefaultZ)); math.Abs(p-99.9) > 0.01 {
		t.Errorf("percentile of the z=3.09 bound %v", p)
	}
	if _, err := FitDistVs(v[:4], a[:4], s[:4]); err == nil {
		t.Error("four values for three parameters accepted")
	}
	if _, err := FitDistVs([]float64{1, 2, 3, 4, 5}, []float64{4, 4, 4, 4, 4}, []float64{1, 2, 3, 4, 5}); err == nil {
		t.Error("one acceleration accepted")
	}
	if d2, err := FitDistVs(v, a, nil); err != nil || d2.SlopeSNR != 0 {
		t.Errorf("acceleration only: %+v %v", d2, err)
	}
}

// The committed Gaussian prior (lap 0, learned from brain scans) finds a
// brain slice more typical than the Shepp–Logan phantom and than a photograph-like noise texture.
func TestTypicalityOrdering(t *testing.T) {
	vol, err := simulate.ReadNIfTI(testutil.File(t, simulate.Volumes["ch2"]))
	if err != nil {
		t.Fatal(err)
	}
	d, _, err := priors.LoadPrior("../train/default-prior/lap-00.safetensors")
	if err != nil {
		t.Fatal(err)
	}
	const n = 128
	norm := func(mag []float32) []complex64 {
		v := append([]float32(nil), mag...)
		sorted := append([]float32(nil), v...)
		sortF32(sorted)
		p99 := sorted[int(0.99*float64(len(sorted)-1))]
		img := make([]complex64, len(v))
		for i, m := range v {
			img[i] = complex(max(m, 0)/p99, 0)
		}
		return img
	}
	score := func(img []complex64) float64 {
		tp, err := TypicalityScore(d, img, n, n, DefaultTypicality)
		if err != nil {
			t.Fatal(err)
		}
		return tp.Score
	}
	brain, err := simulate.Anatomy(vol, 2, 105, simulate.View{Rows: n, Cols: n, PixelMM: 220.0 / n})
	if err != nil {
		t.Fatal(err)
	}
	b, sl := score(norm(brain)), score(norm(simulate.SheppLogan(n)))
	if !(b < sl) {
		t.Errorf("brain %v not below Shepp–Logan %v", b, sl)
	}
	// The same seed gives the same score.
	if b2 := score(norm(brain)); b2 != b {
		t.Errorf("score not reproducible: %v then %v", b, b2)
	}
	if _, err := TypicalityScore(d, norm(brain)[:n*n/4], n/2, n/2, DefaultTypicality); err == nil {
		t.Error("Gaussian prior scored an image of another size")
	}
}

func sortF32(v []float32) {
	for i := 1; i < len(v); i++ {
		for j := i; j > 0 && v[j] < v[j-1]; j-- {
			v[j], v[j-1] = v[j-1], v[j]
		}
	}
}

// Flags follow the measures: empty lines → mask, excess residual with
// disordered lines → motion, with ordered lines → coil maps or mask, noise
// over the declared level → noise (and not data once the noise explains the
// residual), typicality and uncertainty over their thresholds.
func TestDecide(t *testing.T) {
	cal := &Calibration{Z: DefaultZ, DataConsistency: map[string]Dist{"cg-sense": {N: 10, Mean: 0, SD: 0.1}},
		Typicality: &Dist{N: 10, Mean: math.Log(0.2), SD: 0.1}, Settings: &DefaultTypicality, Uncertainty: &Dist{N: 10, Mean: math.Log(0.05), SD: 0.2}}
	base := func() *Result {
		return &Result{Method: "cg-sense", DataConsistency: &DataConsistency{Samples: 10000, Ratio: 1, Lines: 30, LineOrder: 0.9}}
	}
	codes := func(r *Result) string {
		r.Apply(cal)
		var c []string
		for _, f := range r.Flags {
			c = append(c, f.Code)
		}
		return strings.Join(c, ",")
	}
	if c := codes(base()); c != "" {
		t.Errorf("clean: %s", c)
	}
	r := base()
	r.DataConsistency.Ratio = 3
	if c := codes(r); c != CodeDataMismatch || r.Flags[0].Reason != ReasonData {
		t.Errorf("ordered excess: %s", c)
	}
	r.DataConsistency.LineOrder = 0.1
	if c := codes(r); c != CodeMotion {
		t.Errorf("disordered excess: %s", c)
	}
	r = base()
	r.DataConsistency.EmptyLines = 3
	if c := codes(r); c != CodeDataMismatch || r.Flags[0].Reason != ReasonMask {
		t.Errorf("empty lines: %s %v", c, r.Flags)
	}
	r = base()
	r.DataConsistency.Ratio, r.Noise = 4, &Noise{Ratio: 4}
	if c := codes(r); c != CodeNoise {
		t.Errorf("noisy: %s", c)
	}
	r.Noise.Ratio = 1.6 // noise explains only part of the residual
	if c := codes(r); c != CodeNoise+","+CodeDataMismatch {
		t.Errorf("noisy and inconsistent: %s", c)
	}
	r = base()
	r.Typicality, r.Uncertainty = &Typicality{Score: 0.5}, &Uncertainty{Relative: 0.5}
	if c := codes(r); c != CodeAtypical+","+CodeUncertain {
		t.Errorf("atypical, uncertain: %s", c)
	}
	// Line motion flags motion; with an ordered excess, the model error too.
	cal.LineMotion = map[string]Dist{"cg-sense": {N: 10, Mean: math.Log(1e-3), SD: 0.5}}
	cal.EdgeSparsity = map[string]Dist{"cg-sense": {N: 10, Mean: math.Log(3), SD: 0.1}}
	r = base()
	r.LineMotion, r.EdgeSparsity = &LineMotion{Explained: 1e-3}, &EdgeSparsity{Score: 3}
	if c := codes(r); c != "" || r.LineMotion.Threshold <= 1e-3 || r.EdgeSparsity.Threshold <= 3 {
		t.Errorf("typical line motion and edges: %s %+v %+v", c, r.LineMotion, r.EdgeSparsity)
	}
	r.LineMotion.Explained = 0.1
	if c := codes(r); c != CodeMotion {
		t.Errorf("shifted lines: %s", c)
	}
	r.DataConsistency.Ratio = 3
	if c := codes(r); c != CodeMotion+","+CodeDataMismatch {
		t.Errorf("shifted lines, ordered excess: %s", c)
	}
	r = base()
	r.EdgeSparsity = &EdgeSparsity{Score: 10}
	if c := codes(r); c != CodeAtypical || r.Flags[0].Reason != ReasonAtypical {
		t.Errorf("piecewise-constant object: %s", c)
	}
	r.Typicality = &Typicality{Score: 0.5}
	if c := codes(r); c != CodeAtypical {
		t.Errorf("atypical twice, one flag: %s", c)
	}
	r = base()
	r.Method = "unknown-method" // reported, not flagged; the mask check still flags
	r.LineMotion, r.EdgeSparsity = &LineMotion{Explained: 0.5}, &EdgeSparsity{Score: 50}
	r.DataConsistency.Ratio = 100
	if c := codes(r); c != "" || len(r.Notes) == 0 {
		t.Errorf("uncalibrated method: %s %v", c, r.Notes)
	}
	r.DataConsistency.EmptyLines = 3
	if c := codes(r); c != CodeDataMismatch {
		t.Errorf("uncalibrated method, empty lines: %s", c)
	}
	s := Summarise([]*Result{base(), r, nil, r})
	if s.Slices != 3 || s.Flagged != 2 || len(s.Flags) != 1 || !strings.Contains(s.Flags[0].Reason, "slices 1, 3") {
		t.Errorf("summary %+v", s)
	}
}

// The embedded calibration parses and covers the daemon's default method.
func TestClassicalCalibration(t *testing.T) {
	c := Classical()
	if err := c.validate(); err != nil {
		t.Fatal(err)
	}
	for part, ds := range map[string]map[string]Dist{"data consistency": c.DataConsistency, "line motion": c.LineMotion, "edge sparsity": c.EdgeSparsity} {
		if _, ok := ds["cg-sense"]; !ok {
			t.Errorf("no cg-sense %s calibration", part)
		}
	}
}

// Sidecars: absent is no calibration, a valid one loads, broken or huge
// ones are errors.
func TestLoadSidecar(t *testing.T) {
	dir := t.TempDir()
	ckpt := dir + "/p.safetensors"
	if c, err := LoadSidecar(ckpt); c != nil || err != nil {
		t.Fatalf("absent sidecar: %v %v", c, err)
	}
	want := &Calibration{Z: DefaultZ, Prior: "p", Settings: &DefaultTypicality, Typicality: &Dist{N: 5, Mean: -2, SD: 0.1}}
	if err := want.Save(SidecarPath(ckpt)); err != nil {
		t.Fatal(err)
	}
	c, err := LoadSidecar(ckpt)
	if err != nil || c.Typicality.Mean != -2 || c.Prior != "p" {
		t.Fatalf("sidecar %+v %v", c, err)
	}
	m := Classical().Merge(c)
	if m.Typicality == nil || len(m.DataConsistency) == 0 || len(m.LineMotion) == 0 || len(m.EdgeSparsity) == 0 {
		t.Errorf("merged calibration %+v", m)
	}
	for name, body := range map[string]string{
		"not JSON":                  "{",
		"typicality, no settings":   `{"typicality": {"n": 5, "mean_log": -2, "sd_log": 0.1}}`,
		"too few calibration scans": `{"data_consistency": {"cg-sense": {"n": 1, "mean_log": 0, "sd_log": 0.1}}}`,
		"line motion, 2 scans":      `{"line_motion": {"cg-sense": {"n": 2, "mean_log": -8, "sd_log": 1}}}`,
		"huge":                      `{"source": "` + strings.Repeat("x", 2<<20) + `"}`,
	} {
		if err := os.WriteFile(SidecarPath(ckpt), []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
		if _, err := LoadSidecar(ckpt); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
}

// A spread calibration survives parsing and merging; an implausible one
// (a scale outside [0.25, 4], or from too few scans) is refused.
func TestSpreadCalibration(t *testing.T) {
	good := `{"source": "s", "z": 3.09, "spread": [{"pixel_mm": 1.6, "scale": 1.3, "scans": 12, "q1": 0.9, "q3": 1.4, "source": "check-spread"},
		{"pixel_mm": 0.8, "scale": 1.0, "scans": 10, "q1": 0.9, "q3": 1.1, "source": "check-spread"}]}`
	c, err := ParseCalibration([]byte(good))
	if err != nil {
		t.Fatal(err)
	}
	m := Classical().Merge(c)
	if len(m.Spread) != 2 || m.Spread[0].Scale != 1.3 || m.Spread[1].Scans != 10 {
		t.Fatalf("merged spread %+v", m.Spread)
	}
	// Linear in log pixel size between the entries, the nearest beyond
	// them, the first (the prior's own scans) for an unknown size.
	for _, c := range []struct{ px, want float64 }{
		{1.6, 1.3}, {0.8, 1.0}, {2.5, 1.3}, {0.5, 1.0}, {math.Sqrt(1.6 * 0.8), 1.15}, {0, 1.3},
	} {
		if got := m.StdScale(c.px); math.Abs(got-c.want) > 1e-12 {
			t.Errorf("StdScale(%v) = %v, want %v", c.px, got, c.want)
		}
	}
	if s := Classical().Merge(nil); s.Spread != nil || s.StdScale(1) != 1 {
		t.Fatalf("classical calibration has a spread: %+v", s.Spread)
	}
	one := &Calibration{Spread: []Spread{{PixelMM: 1.6, Scale: 1.2, Scans: 9}}}
	if one.StdScale(0.5) != 1.2 || one.StdScale(0) != 1.2 {
		t.Errorf("one entry: %v, %v; want its scale everywhere", one.StdScale(0.5), one.StdScale(0))
	}
	for _, bad := range []string{
		`{"spread": [{"scale": 7, "scans": 12}]}`,
		`{"spread": [{"scale": 0, "scans": 12}]}`,
		`{"spread": [{"scale": 1.1, "scans": 3}]}`,
		`{"spread": [{"scale": 1.1, "scans": 12, "pixel_mm": -1}]}`,
	} {
		if _, err := ParseCalibration([]byte(bad)); err == nil {
			t.Errorf("%s accepted", bad)
		}
	}
}
