package quality

import (
	"encoding/json"
	"fmt"
	"io"
	"math"
	"os"
	"path/filepath"
	"sort"
)

// LoadCells reads the cells of a report WriteJSON wrote, their summaries
// recomputed from the per-scan scores.
func LoadCells(path string) ([]Cell, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	var r struct {
		Cells []cellJSON `json:"cells"`
	}
	if err := json.Unmarshal(b, &r); err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	cells := make([]Cell, len(r.Cells))
	for i, c := range r.Cells {
		cells[i] = c.Cell
		cells[i].Rows, cells[i].Cols = c.Matrix[0], c.Matrix[1]
		cells[i].summarise()
	}
	return cells, nil
}

// Pair is one test folder's paired comparison of method B against method A
// on the scans both scored: per-scan differences B − A, so that what the
// scans share (their difficulty) cancels.
type Pair struct {
	Folder           string
	A, B             string // methods
	PSNRGap, SSIMGap Summary
	Wins             int     // scans where B's PSNR is higher
	Coverage         Summary // B's, on the paired scans
}

// Paired pairs method b's cells in bs with method a's in as by test folder
// (base name) and scan; folders with no scan in both are left out.
func Paired(as []Cell, a string, bs []Cell, b string) []Pair {
	base := map[string]map[string]Score{}
	for _, c := range as {
		if c.Method != a {
			continue
		}
		m := map[string]Score{}
		for _, s := range c.Scores {
			m[s.Scan] = s
		}
		base[filepath.Base(c.Folder)] = m
	}
	var out []Pair
	for _, c := range bs {
		ref, ok := base[filepath.Base(c.Folder)]
		if c.Method != b || !ok {
			continue
		}
		p := Pair{Folder: filepath.Base(c.Folder), A: a, B: b}
		var dp, ds, cov []float64
		for _, s := range c.Scores {
			r, ok := ref[s.Scan]
			if !ok {
				continue
			}
			dp, ds = append(dp, s.PSNR-r.PSNR), append(ds, s.SSIM-r.SSIM)
			if s.PSNR > r.PSNR {
				p.Wins++
			}
			if s.Coverage != nil {
				cov = append(cov, *s.Coverage)
			}
		}
		if len(dp) == 0 {
			continue
		}
		p.PSNRGap, p.SSIMGap, p.Coverage = summarise(dp), summarise(ds), summarise(cov)
		out = append(out, p)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Folder < out[j].Folder })
	return out
}

// StdErr is the standard error of the mean (0 for fewer than 2 values).
func (s Summary) StdErr() float64 {
	if s.N < 2 {
		return 0
	}
	return s.SD / math.Sqrt(float64(s.N))
}

// PairedMarkdown writes pairs as a table: gaps as mean ± standard error.
func PairedMarkdown(w io.Writer, pairs []Pair, nameA, nameB string) {
	fmt.Fprintf(w, "B minus A per scan, mean ± standard error; A: %s, B: %s\n\n", nameA, nameB)
	fmt.Fprintln(w, "| cell | scans | PSNR gap (dB) | SSIM gap | scans B wins | coverage of B |")
	fmt.Fprintln(w, "|---|---|---|---|---|---|")
	for _, p := range pairs {
		cov := ""
		if p.Coverage.N > 0 {
			cov = fmt.Sprintf("%.3f ± %.3f", p.Coverage.Mean, p.Coverage.StdErr())
		}
		fmt.Fprintf(w, "| %s | %d | %+.2f ± %.2f | %+.4f ± %.4f | %d/%d | %s |\n", p.Folder, p.PSNRGap.N,
			p.PSNRGap.Mean, p.PSNRGap.StdErr(), p.SSIMGap.Mean, p.SSIMGap.StdErr(), p.Wins, p.PSNRGap.N, cov)
	}
}
