package quality

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"path/filepath"
	"slices"

	"github.com/kspaced/kspaced/configs"
	"github.com/kspaced/kspaced/pipeline"
	"github.com/kspaced/kspaced/qc"
)

// SpreadRatio is one slice's held-out-line ratio (posterior.CheckSpread).
type SpreadRatio struct {
	Scan  string  `json:"scan"`
	Ratio float64 `json:"ratio"`
}

// MeasureSpread calibrates a prior's std without truth: it samples up to
// max k-space files of dir (spread over the name order; 0: all) with
// recon.sampler.spread_check under cfg (its method and prior) and returns
// the median ratio over the slices as a qc.Spread, with every slice's
// ratio. Slices that give no ratio (the noise alone explains their
// held-out lines, or their mask measured only the centre) are left out. Progress goes to log (may be nil).
func MeasureSpread(ctx context.Context, cfg *configs.Config, dir string, max int, log io.Writer) (*qc.Spread, []SpreadRatio, error) {
	if !cfg.Recon.Sampling() {
		return nil, nil, fmt.Errorf("spread: %s does not sample", cfg.Recon.Method)
	}
	files, err := pipeline.KSpaceCandidates([]string{dir})
	if err != nil {
		return nil, nil, err
	}
	files = spreadOver(files, max)
	c := *cfg
	c.Recon.Sampler.SpreadCheck = true
	c.Output = configs.Output{}
	tmp, err := os.MkdirTemp("", "kspaced-spread-")
	if err != nil {
		return nil, nil, err
	}
	defer os.RemoveAll(tmp)
	var out []SpreadRatio
	var pixels []float64
	for k, f := range files {
		rep, err := pipeline.Run(ctx, pipeline.Job{ID: "spread", Inputs: []string{f}, Config: &c}, tmp, nil)
		if err != nil {
			return nil, nil, fmt.Errorf("spread: %s: %w", filepath.Base(f), err)
		}
		for s, r := range rep.SpreadRatio {
			name := filepath.Base(f)
			if len(rep.SpreadRatio) > 1 {
				name = fmt.Sprintf("%s[%d]", name, s)
			}
			if r == nil {
				if log != nil {
					fmt.Fprintf(log, "[%d/%d] %s: no ratio (nothing to hold out, or the noise explains the held-out lines)\n", k+1, len(files), name)
				}
				continue
			}
			out = append(out, SpreadRatio{Scan: name, Ratio: *r})
			if s < len(rep.PixelMM) && rep.PixelMM[s] > 0 {
				pixels = append(pixels, rep.PixelMM[s])
			}
			if log != nil {
				fmt.Fprintf(log, "[%d/%d] %s: ratio %.3f\n", k+1, len(files), name, *r)
			}
		}
	}
	if len(out) < qc.MinSpreadScans {
		return nil, out, fmt.Errorf("spread: %d slices gave a ratio, a calibration needs at least %d", len(out), qc.MinSpreadScans)
	}
	r := make([]float64, len(out))
	for i, s := range out {
		r[i] = s.Ratio
	}
	slices.Sort(r)
	var px float64
	if len(pixels) > 0 {
		slices.Sort(pixels)
		px = qc.Quantile(pixels, 0.5)
	}
	sp := &qc.Spread{PixelMM: px, Scale: qc.Quantile(r, 0.5), Scans: len(r), Q1: qc.Quantile(r, 0.25), Q3: qc.Quantile(r, 0.75),
		Source: fmt.Sprintf("kspaced prior check-spread: %d slices of %s, %s under %s, %d samples", len(r), dir, c.Recon.Method, pipeline.PriorName(c.Recon.Sampler.Prior), c.Recon.Sampler.Samples)}
	if !(sp.Scale > 0) || math.IsInf(sp.Scale, 0) {
		return nil, out, errors.New("spread: median ratio is not a positive number")
	}
	return sp, out, nil
}
