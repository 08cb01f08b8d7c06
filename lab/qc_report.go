package lab

import (
	"bytes"
	"fmt"
	"image"
	"image/color"
	"image/png"
	"math"
	"os"
	"sort"
	"strings"

	"github.com/kspaced/kspaced/qc"
)

// QCScore is the largest of a result's measures over its flag threshold,
// so a slice is flagged exactly when QCScore > 1: the residual ratio (at
// the noise the data show when they are noisier than declared) over its
// threshold, the noise ratio over qc.NoiseRatioLimit, line motion, edge
// sparsity, typicality and uncertainty over theirs, and empty sampled lines over qc.EmptyLineShare.
// Scaling every threshold by k flags the slices with QCScore > k: the ROC
// curve's parameter.
func QCScore(r *qc.Result) float64 {
	s := 0.0
	dc := r.DataConsistency
	noise := 1.0
	if n := r.Noise; n != nil {
		s = math.Max(s, n.Ratio/qc.NoiseRatioLimit)
		if n.Ratio > qc.NoiseRatioLimit {
			noise = n.Ratio
		}
	}
	if dc != nil {
		if dc.Threshold > 0 {
			s = math.Max(s, dc.Ratio/noise/dc.Threshold)
		}
		if dc.Lines > 0 {
			s = math.Max(s, float64(dc.EmptyLines)/float64(dc.Lines)/qc.EmptyLineShare)
		}
	}
	if m := r.LineMotion; m != nil && m.Threshold > 0 {
		s = math.Max(s, m.Explained/m.Threshold)
	}
	if e := r.EdgeSparsity; e != nil && e.Threshold > 0 {
		s = math.Max(s, e.Score/e.Threshold)
	}
	if t := r.Typicality; t != nil && t.Threshold > 0 {
		s = math.Max(s, t.Score/t.Threshold)
	}
	if u := r.Uncertainty; u != nil && u.Threshold > 0 {
		s = math.Max(s, u.Relative/u.Threshold)
	}
	return s
}

// ROC is one failure class against the in-distribution scans.
type ROC struct {
	Class    string
	FPR, TPR []float64 // from (0,0) to (1,1)
	AUC      float64
}

// ROCs computes the curve of every failure class, QCScore as the score.
func (ev *QCEvaluation) ROCs() []ROC {
	var neg []float64
	pos := map[string][]float64{}
	for _, c := range ev.Cases {
		s := QCScore(c.Result)
		if inDistribution(c.Class) {
			neg = append(neg, s)
		} else {
			pos[c.Class] = append(pos[c.Class], s)
		}
	}
	var out []ROC
	for _, cl := range QCClasses {
		p := pos[cl]
		if len(p) == 0 {
			continue
		}
		out = append(out, roc(cl, neg, p))
	}
	return out
}

func roc(class string, neg, pos []float64) ROC {
	ts := append(append([]float64{}, neg...), pos...)
	sort.Sort(sort.Reverse(sort.Float64Slice(ts)))
	r := ROC{Class: class, FPR: []float64{0}, TPR: []float64{0}}
	frac := func(v []float64, t float64) float64 {
		n := 0
		for _, x := range v {
			if x >= t {
				n++
			}
		}
		return float64(n) / float64(len(v))
	}
	for _, t := range ts {
		r.FPR = append(r.FPR, frac(neg, t))
		r.TPR = append(r.TPR, frac(pos, t))
	}
	r.FPR, r.TPR = append(r.FPR, 1), append(r.TPR, 1)
	// AUC: P(score of a failure > score of an in-distribution scan), ties half.
	var auc float64
	for _, p := range pos {
		for _, n := range neg {
			switch {
			case p > n:
				auc++
			case p == n:
				auc += 0.5
			}
		}
	}
	r.AUC = auc / float64(len(pos)*len(neg))
	return r
}

// ROCColours are the curves' colours in QCClasses order of the failures.
var ROCColours = map[string]color.RGBA{
	ClassMotion: {230, 25, 75, 255}, ClassCoils: {60, 180, 75, 255}, ClassMask: {0, 130, 200, 255},
	ClassNoise: {245, 130, 48, 255}, ClassPhantom: {145, 30, 180, 255}, ClassNonBrain: {70, 70, 70, 255},
}

// WriteROCPNG draws the curves (false-positive rate across, true-positive
// rate up, the chance diagonal in grey, the operating point k = 1 of each
// class as a square) as a PNG.
func (ev *QCEvaluation) WriteROCPNG(path string) error {
	const size, pad = 480, 40
	img := image.NewRGBA(image.Rect(0, 0, size+2*pad, size+2*pad))
	for i := range img.Pix {
		img.Pix[i] = 255
	}
	grey := color.RGBA{190, 190, 190, 255}
	at := func(x, y float64) (int, int) {
		return pad + int(math.Round(x*size)), pad + size - int(math.Round(y*size))
	}
	line := func(x0, y0, x1, y1 float64, c color.RGBA, w int) {
		n := int(math.Max(math.Abs(x1-x0), math.Abs(y1-y0))*size) + 1
		for i := 0; i <= n; i++ {
			t := float64(i) / float64(n)
			px, py := at(x0+t*(x1-x0), y0+t*(y1-y0))
			for dx := -w / 2; dx <= w/2; dx++ {
				for dy := -w / 2; dy <= w/2; dy++ {
					img.SetRGBA(px+dx, py+dy, c)
				}
			}
		}
	}
	for _, e := range [][4]float64{{0, 0, 1, 0}, {0, 0, 0, 1}, {1, 0, 1, 1}, {0, 1, 1, 1}, {0, 0, 1, 1}} {
		line(e[0], e[1], e[2], e[3], grey, 1)
	}
	for k := 1; k < 10; k++ { // ticks every 0.1
		f := float64(k) / 10
		line(f, 0, f, 0.015, grey, 1)
		line(0, f, 0.015, f, grey, 1)
	}
	inDist, fail := ev.operatingPoints()
	for _, r := range ev.ROCs() {
		c := ROCColours[r.Class]
		for i := 1; i < len(r.FPR); i++ {
			line(r.FPR[i-1], r.TPR[i-1], r.FPR[i], r.TPR[i], c, 3)
		}
		px, py := at(inDist, fail[r.Class])
		for dx := -5; dx <= 5; dx++ {
			for dy := -5; dy <= 5; dy++ {
				img.SetRGBA(px+dx, py+dy, c)
			}
		}
	}
	var buf bytes.Buffer
	if err := png.Encode(&buf, img); err != nil {
		return err
	}
	return os.WriteFile(path, buf.Bytes(), 0o644)
}

// operatingPoints are the flagged shares at the shipped thresholds.
func (ev *QCEvaluation) operatingPoints() (inDist float64, fail map[string]float64) {
	fail = map[string]float64{}
	var nIn, fIn int
	for _, r := range ev.Table() {
		if inDistribution(r.Class) {
			nIn += r.N
			fIn += r.Flagged
		} else {
			fail[r.Class] = r.Rate()
		}
	}
	return float64(fIn) / float64(max(nIn, 1)), fail
}

// Markdown is the table of docs/bench/qc.md: flag rate per class, the
// flags raised, and the class's AUC.
func (ev *QCEvaluation) Markdown() string {
	var b strings.Builder
	auc := map[string]float64{}
	for _, r := range ev.ROCs() {
		auc[r.Class] = r.AUC
	}
	b.WriteString("| class | scans | flagged | rate | goal | flags raised (slices) | AUC vs in-distribution |\n|---|---|---|---|---|---|---|\n")
	for _, r := range ev.Table() {
		goal := "≥ 90 %"
		if inDistribution(r.Class) {
			goal = "≤ 5 %"
		}
		var codes []string
		for _, k := range sortedKeys(r.Codes) {
			codes = append(codes, fmt.Sprintf("%s %d", k, r.Codes[k]))
		}
		a := "—"
		if v, ok := auc[r.Class]; ok {
			a = fmt.Sprintf("%.3f", v)
		}
		fmt.Fprintf(&b, "| %s | %d | %d | %.0f %% | %s | %s | %s |\n", r.Class, r.N, r.Flagged, 100*r.Rate(), goal, strings.Join(codes, ", "), a)
	}
	return b.String()
}
