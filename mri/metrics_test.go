package mri

import (
	"encoding/json"
	"math"
	"os"
	"path/filepath"
	"testing"

	"github.com/kspaced/kspaced/internal/testutil"
)

const skimageMetrics = `
import json, numpy as np
from skimage.metrics import structural_similarity, peak_signal_noise_ratio
cases = json.load(open("cases.json"))
out = []
for c in cases:
    shape = (c["rows"], c["cols"])
    a = np.array(c["target"], dtype=np.float32).reshape(shape).astype(np.float64)
    b = np.array(c["pred"], dtype=np.float32).reshape(shape).astype(np.float64)
    out.append({
        "ssim": structural_similarity(a, b, data_range=c["range"]),
        "psnr": peak_signal_noise_ratio(a, b, data_range=c["range"]),
    })
json.dump(out, open("out.json", "w"))
`

func TestMetricsAgainstSkimage(t *testing.T) {
	t.Parallel()
	py := testutil.PythonWith(t, "skimage.metrics", "numpy")
	type tc struct {
		Rows   int       `json:"rows"`
		Cols   int       `json:"cols"`
		Target []float32 `json:"target"`
		Pred   []float32 `json:"pred"`
		Range  float64   `json:"range"`
	}
	rng := testRand(101)
	var cases []tc
	for _, sz := range [][2]int{{7, 7}, {8, 11}, {32, 32}, {45, 60}, {128, 96}} {
		for _, noise := range []float64{0.01, 0.2, 1} {
			n := sz[0] * sz[1]
			a, b := make([]float32, n), make([]float32, n)
			for i := range a {
				r, c := i/sz[1], i%sz[1]
				a[i] = float32(math.Abs(math.Sin(0.3*float64(r))*math.Cos(0.2*float64(c))) + 0.3*rng.Float64())
				b[i] = float32(math.Max(0, float64(a[i])+noise*rng.NormFloat64()))
			}
			cases = append(cases, tc{sz[0], sz[1], a, b, MaxOf(a)})
		}
	}
	dir := t.TempDir()
	js, _ := json.Marshal(cases)
	if err := os.WriteFile(filepath.Join(dir, "cases.json"), js, 0o644); err != nil {
		t.Fatal(err)
	}
	runPython(t, py, dir, skimageMetrics)
	raw, err := os.ReadFile(filepath.Join(dir, "out.json"))
	if err != nil {
		t.Fatal(err)
	}
	var ref []struct{ SSIM, PSNR float64 }
	if err := json.Unmarshal(raw, &ref); err != nil || len(ref) != len(cases) {
		t.Fatalf("reference: %v, %d results", err, len(ref))
	}
	for i, c := range cases {
		s, err := SSIM(c.Target, c.Pred, c.Rows, c.Cols, c.Range)
		if err != nil {
			t.Fatal(err)
		}
		p, err := PSNR(c.Target, c.Pred, c.Range)
		if err != nil {
			t.Fatal(err)
		}
		if math.Abs(s-ref[i].SSIM) > 1e-9 {
			t.Errorf("%d×%d: SSIM %.12f, skimage %.12f", c.Rows, c.Cols, s, ref[i].SSIM)
		}
		if math.Abs(p-ref[i].PSNR) > 1e-9 {
			t.Errorf("%d×%d: PSNR %.12f, skimage %.12f", c.Rows, c.Cols, p, ref[i].PSNR)
		}
	}
}

func TestMetricsEdgeCases(t *testing.T) {
	t.Parallel()
	a := []float32{1, 2, 3, 4}
	if p, _ := PSNR(a, a, 4); !math.IsInf(p, 1) {
		t.Errorf("PSNR of identical images %v", p)
	}
	if _, err := PSNR(a, a[:3], 4); err == nil {
		t.Error("PSNR: length mismatch accepted")
	}
	if _, err := SSIM(make([]float32, 36), make([]float32, 36), 6, 6, 1); err == nil {
		t.Error("SSIM: 6×6 accepted")
	}
	img := make([]float32, 100)
	for i := range img {
		img[i] = float32(i % 7)
	}
	if s, _ := SSIM(img, img, 10, 10, 6); math.Abs(s-1) > 1e-12 {
		t.Errorf("SSIM of identical images %v", s)
	}
	m := make([]float32, 2)
	Magnitude(m, []complex64{3 + 4i, -1})
	if m[0] != 5 || m[1] != 1 {
		t.Errorf("Magnitude %v", m)
	}
}
