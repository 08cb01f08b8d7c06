package quality

import (
	"context"
	"fmt"
	"math"
	"path/filepath"
	"strings"
)

// tune picks method m's weight with the best mean PSNR on the validation
// scans of opt.TuneOn.
func (h *harness) tune(ctx context.Context, m string) (*Tuning, error) {
	grid, n := h.opt.Grid, h.opt.TuneScans
	if m == BartPics {
		grid = h.opt.BartGrid
	}
	if len(grid) == 0 {
		grid = DefaultGrid
	}
	if n <= 0 {
		n = 4
	}
	for _, t := range h.opt.Tests {
		if filepath.Clean(t) == filepath.Clean(h.opt.TuneOn) {
			return nil, fmt.Errorf("quality: tuning folder %s is also a test folder; tune on validation scans only", t)
		}
	}
	files, err := scans(h.opt.TuneOn, n)
	if err != nil {
		return nil, err
	}
	t := &Tuning{Method: m, Folder: h.opt.TuneOn, Grid: grid, PSNR: make([]float64, len(grid)), SSIM: make([]float64, len(grid))}
	for _, f := range files {
		t.Scans = append(t.Scans, filepath.Base(f))
		tr, err := readTruth(f)
		if err != nil {
			return nil, err
		}
		var recs []*recon
		if m == BartPics {
			if recs, err = h.bartRuns(ctx, f, grid); err != nil {
				return nil, fmt.Errorf("tune %s on %s: %w", m, f, err)
			}
		} else {
			for _, lam := range grid {
				r, err := h.reconstruct(ctx, f, m, lam)
				if err != nil {
					return nil, fmt.Errorf("tune %s on %s: %w", m, f, err)
				}
				recs = append(recs, r)
			}
		}
		var line []string
		for i, r := range recs {
			sc, err := scoreAll(filepath.Base(f), tr, r)
			if err != nil {
				return nil, err
			}
			for _, s := range sc {
				t.PSNR[i] += s.PSNR / float64(len(sc)*len(files))
				t.SSIM[i] += s.SSIM / float64(len(sc)*len(files))
			}
			line = append(line, fmt.Sprintf("%g: %.2f", grid[i], sc[0].PSNR))
		}
		h.logf("tune %s on %s: PSNR by λ %s\n", m, filepath.Base(f), strings.Join(line, ", "))
	}
	best := math.Inf(-1)
	for i, p := range t.PSNR {
		if p > best {
			best, t.Best = p, grid[i]
		}
	}
	if t.Best == grid[0] || t.Best == grid[len(grid)-1] {
		h.logf("tune %s: the best λ %g is at the edge of the grid; widen it\n", m, t.Best)
	}
	h.logf("tune %s: λ = %g (mean PSNR %.2f dB on %d validation scans)\n", m, t.Best, best, len(files))
	return t, nil
}
