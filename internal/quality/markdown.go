package quality

import (
	"encoding/json"
	"fmt"
	"io"
	"math"
	"path/filepath"
	"strings"

	"github.com/kspaced/kspaced/internal/safefile"
)

// Markdown writes the report as the tables docs/benchmarks.md keeps.
func (r *Report) Markdown(w io.Writer) {
	for _, t := range r.Tuning {
		var g []string
		for i, l := range t.Grid {
			g = append(g, fmt.Sprintf("%g → %.2f dB", l, t.PSNR[i]))
		}
		fmt.Fprintf(w, "%s λ tuned on %d validation scans of %s: %s; chosen λ = %g\n\n",
			t.Method, len(t.Scans), t.Folder, strings.Join(g, ", "), t.Best)
	}
	sp := r.Sampler
	fmt.Fprintf(w, "cg-sense λ = %g; %d iterations for cg-sense, l1-wavelet and bart-pics", r.CGLambda, r.Iterations)
	if sp.Prior != "" {
		fmt.Fprintf(w, "; sampling: prior %s, %d samples, %d steps, CG %d", filepath.Base(sp.Prior), sp.Samples, sp.Steps, sp.CGIterations)
	}
	fmt.Fprint(w, "\n\n")
	fmt.Fprintln(w, "| cell | matrix | method | λ | scans | PSNR (dB) | SSIM | coverage of 90 % intervals (mean ± t·√(1+1/n)·std) | s per scan |")
	fmt.Fprintln(w, "|---|---|---|---|---|---|---|---|---|")
	for _, c := range r.Cells {
		lam, cov := "", ""
		if c.Lambda > 0 {
			lam = fmt.Sprintf("%g", c.Lambda)
		}
		if c.Coverage.N > 0 {
			cov = fmt.Sprintf("%.3f ± %.3f", c.Coverage.Mean, c.Coverage.SD)
		}
		fmt.Fprintf(w, "| %s | %d×%d | %s | %s | %d | %.2f ± %.2f | %.4f ± %.4f | %s | %.1f |\n",
			filepath.Base(c.Folder), c.Rows, c.Cols, c.Method, lam, c.PSNR.N,
			c.PSNR.Mean, c.PSNR.SD, c.SSIM.Mean, c.SSIM.SD, cov, c.Seconds.Mean)
	}
}

// cellJSON is a cell as WriteJSON writes it and LoadCells reads it back.
type cellJSON struct {
	Cell
	Matrix   [2]int      `json:"matrix"`
	PSNR     [2]float64  `json:"psnr_mean_sd"`
	SSIM     [2]float64  `json:"ssim_mean_sd"`
	Coverage *[2]float64 `json:"coverage_mean_sd,omitempty"`
	Seconds  float64     `json:"seconds_per_scan"`
}

// WriteJSON writes the report, every scan's scores included, to path.
func (r *Report) WriteJSON(path string) error {
	out := struct {
		*Report
		Cells []cellJSON `json:"cells"`
	}{Report: r}
	for _, c := range r.Cells {
		cj := cellJSON{Cell: c, Matrix: [2]int{c.Rows, c.Cols}, PSNR: [2]float64{c.PSNR.Mean, finite(c.PSNR.SD)},
			SSIM: [2]float64{c.SSIM.Mean, finite(c.SSIM.SD)}, Seconds: c.Seconds.Mean}
		if c.Coverage.N > 0 {
			cj.Coverage = &[2]float64{c.Coverage.Mean, finite(c.Coverage.SD)}
		}
		out.Cells = append(out.Cells, cj)
	}
	b, err := json.MarshalIndent(out, "", "  ")
	if err != nil {
		return err
	}
	return safefile.WriteFile(path, append(b, '\n'), 0o644)
}

func finite(x float64) float64 {
	if math.IsNaN(x) || math.IsInf(x, 0) {
		return 0
	}
	return x
}
