package quality

import (
	"bytes"
	"math"
	"path/filepath"
	"strings"
	"testing"
)

// TestPaired: gaps are per scan, on the scans both methods scored, and
// survive a JSON round trip; checked against the gaps worked out by hand.
func TestPaired(t *testing.T) {
	cov := func(x float64) *float64 { return &x }
	l1 := Cell{Folder: "/a/test/m128-4x", Method: "l1-wavelet", Scores: []Score{
		{Scan: "s1", PSNR: 20, SSIM: 0.5}, {Scan: "s2", PSNR: 30, SSIM: 0.8}, {Scan: "s3", PSNR: 25, SSIM: 0.7}, {Scan: "only-l1", PSNR: 99}}}
	mmps := Cell{Folder: "/elsewhere/m128-4x", Method: "mmps", Scores: []Score{
		{Scan: "s1", PSNR: 21, SSIM: 0.55, Coverage: cov(0.8)}, {Scan: "s2", PSNR: 32, SSIM: 0.82, Coverage: cov(0.9)},
		{Scan: "s3", PSNR: 24.5, SSIM: 0.73, Coverage: cov(0.85)}, {Scan: "only-mmps", PSNR: 1}}}
	other := Cell{Folder: "/a/test/m256-4x", Method: "mmps", Scores: []Score{{Scan: "s1", PSNR: 1}}} // no L1 cell
	dir := t.TempDir()
	for i, cells := range [][]Cell{{l1}, {mmps, other}} {
		r := &Report{Cells: cells}
		for j := range r.Cells {
			r.Cells[j].summarise()
		}
		if err := r.WriteJSON(filepath.Join(dir, []string{"a.json", "b.json"}[i])); err != nil {
			t.Fatal(err)
		}
	}
	as, err := LoadCells(filepath.Join(dir, "a.json"))
	if err != nil {
		t.Fatal(err)
	}
	bs, err := LoadCells(filepath.Join(dir, "b.json"))
	if err != nil {
		t.Fatal(err)
	}
	pairs := Paired(as, "l1-wavelet", bs, "mmps")
	if len(pairs) != 1 {
		t.Fatalf("pairs %+v, want one (m128-4x)", pairs)
	}
	p := pairs[0]
	// PSNR gaps 1, 2, −0.5: mean 5/6, SD √((1/36 + 49/36 + 64/36)/2) = √(19/12).
	if p.Folder != "m128-4x" || p.PSNRGap.N != 3 || p.Wins != 2 ||
		math.Abs(p.PSNRGap.Mean-5.0/6) > 1e-12 || math.Abs(p.PSNRGap.SD-math.Sqrt(19.0/12)) > 1e-12 ||
		math.Abs(p.PSNRGap.StdErr()-math.Sqrt(19.0/36)) > 1e-12 {
		t.Errorf("PSNR pair %+v", p)
	}
	if math.Abs(p.SSIMGap.Mean-0.1/3) > 1e-9 || math.Abs(p.Coverage.Mean-0.85) > 1e-12 || p.Coverage.N != 3 {
		t.Errorf("SSIM gap %+v, coverage %+v", p.SSIMGap, p.Coverage)
	}
	var b bytes.Buffer
	PairedMarkdown(&b, pairs, "L1", "MMPS")
	if !strings.Contains(b.String(), "| m128-4x | 3 | +0.83 ± 0.73 | +0.0333 ± 0.0088 | 2/3 | 0.850 ± 0.029 |") {
		t.Errorf("table:\n%s", b.String())
	}
}
