package qc

import (
	"cmp"
	_ "embed"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"maps"
	"math"
	"os"
	"slices"

	"github.com/kspaced/kspaced/internal/safefile"
)

// Calibration is what QC compares a slice against: distributions of the
// measures over in-distribution scans. The classical methods' data
// consistency does not depend on a prior and ships embedded
// (classical.qc.json); a prior's typicality (and the data consistency of
// the sampling methods under it) lives in a sidecar beside the checkpoint,
// CKPT.qc.json (SidecarPath), written by the evaluation in lab/.
type Calibration struct {
	// Source says which scans and which command produced it.
	Source string `json:"source"`
	// Z is how many log standard deviations above the calibration mean a
	// measure must be to be flagged (3.09: one-sided p = 0.001 for a
	// log-normal).
	Z float64 `json:"z"`
	// DataConsistency is the ln(ratio) distribution per reconstruction method.
	DataConsistency map[string]Dist `json:"data_consistency,omitempty"`
	// LineMotion and EdgeSparsity are the distributions of those measures
	// per method (ln Explained, ln Score), like DataConsistency.
	LineMotion   map[string]Dist `json:"line_motion,omitempty"`
	EdgeSparsity map[string]Dist `json:"edge_sparsity,omitempty"`
	// Prior names the checkpoint the typicality and uncertainty parts are for.
	Prior       string              `json:"prior,omitempty"`
	Settings    *TypicalitySettings `json:"typicality_settings,omitempty"`
	Typicality  *Dist               `json:"typicality,omitempty"`
	Uncertainty *Dist               `json:"uncertainty,omitempty"`
	// Spread calibrates the prior's posterior std, one entry per pixel size
	// measured (the sampling methods multiply theirs by StdScale); empty:
	// used as sampled.
	Spread []Spread `json:"spread,omitempty"`
}

// Spread is a prior's std calibration at one pixel size, measured without
// truth: the median over undersampled scans of posterior.CheckSpread's
// ratio (held-out k-space lines against the samples' spread there). One
// scan's ratio is too noisy to use alone (docs/bench/sampling.md); the
// median of many is not. It depends on the pixel size: a prior is
// calibrated where its training images were and not elsewhere.
type Spread struct {
	// PixelMM is the median in-plane pixel size of the scans (0: unknown).
	PixelMM float64 `json:"pixel_mm,omitempty"`
	Scale   float64 `json:"scale"`
	// Scans is how many scans the median is over, Q1 and Q3 the quartiles
	// of their ratios.
	Scans  int     `json:"scans"`
	Q1     float64 `json:"q1"`
	Q3     float64 `json:"q3"`
	Source string  `json:"source"`
}

// MinSpreadScans is the fewest scans a Spread calibration may rest on.
const MinSpreadScans = 8

// DefaultZ is the flag threshold in log standard deviations.
const DefaultZ = 3.09

// NoiseRatioLimit flags data noisier than declared: the estimate from the
// data is within about ±15 % (mri.minNoiseSamples) and, for 1-D masks,
// biased only upwards (2-D masks: docs/bench/noise.md).
const NoiseRatioLimit = 1.5

// MotionOrder is the LineOrder below which an excess residual is put down
// to motion rather than to the coil maps or mask. On cases made from the
// calibration slices (lab.DevelopmentCases, docs/bench/qc.md) shifted coil
// maps gave orders 0.78–1.00 and motion 24 of 32 below 0.78 (before the
// noise-estimate change: 0.79–1.00, 28 of 32).
const MotionOrder = 0.8

// EmptyLineShare is the share of sampled lines holding no data at all above
// which the mask is taken to lie about what was acquired.
const EmptyLineShare = 0.02

//go:embed classical.qc.json
var classicalRaw []byte

// Classical is the embedded calibration of the classical methods.
func Classical() *Calibration {
	var c Calibration
	if err := json.Unmarshal(classicalRaw, &c); err != nil {
		panic("qc: embedded classical.qc.json: " + err.Error())
	}
	return &c
}

const maxSidecar = 1 << 20

// SidecarPath is where a checkpoint's calibration lives.
func SidecarPath(checkpoint string) string { return checkpoint + ".qc.json" }

// LoadSidecar reads the calibration of a checkpoint; (nil, nil) when it has none.
func LoadSidecar(checkpoint string) (*Calibration, error) {
	return LoadCalibration(SidecarPath(checkpoint))
}

// LoadCalibration reads and checks the calibration file at path; (nil, nil)
// when there is none.
func LoadCalibration(path string) (*Calibration, error) {
	f, err := os.Open(path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	defer f.Close()
	// A calibration is a few hundred bytes; a large file is not one.
	raw, err := io.ReadAll(io.LimitReader(f, maxSidecar+1))
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", path, err)
	}
	if len(raw) > maxSidecar {
		return nil, fmt.Errorf("read %s: larger than %d bytes", path, maxSidecar)
	}
	c, err := ParseCalibration(raw)
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", path, err)
	}
	return c, nil
}

// ParseCalibration decodes and checks a calibration (an embedded one: the
// built-in prior's).
func ParseCalibration(raw []byte) (*Calibration, error) {
	var c Calibration
	if err := json.Unmarshal(raw, &c); err != nil {
		return nil, err
	}
	if err := c.validate(); err != nil {
		return nil, err
	}
	return &c, nil
}

// Save writes c as indented JSON, atomically (a reader never sees half a
// calibration).
func (c *Calibration) Save(path string) error {
	raw, err := json.MarshalIndent(c, "", "  ")
	if err != nil {
		return err
	}
	return safefile.WriteFile(path, append(raw, '\n'), 0o644)
}

func (c *Calibration) validate() error {
	ok := func(d Dist) bool { return d.N >= 3 && !math.IsNaN(d.Mean) && d.SD >= 0 }
	for part, ds := range map[string]map[string]Dist{"data consistency": c.DataConsistency, "line motion": c.LineMotion, "edge sparsity": c.EdgeSparsity} {
		for m, d := range ds {
			if !ok(d) {
				return fmt.Errorf("%s calibration of %s: %+v", part, m, d)
			}
		}
	}
	if c.Typicality != nil && (!ok(*c.Typicality) || c.Settings == nil || len(c.Settings.Sigmas) == 0) {
		return errors.New("typicality calibration without its settings")
	}
	if c.Uncertainty != nil && !ok(*c.Uncertainty) {
		return errors.New("bad uncertainty calibration")
	}
	for _, s := range c.Spread {
		if !(s.Scale >= 0.25 && s.Scale <= 4 && s.Scans >= MinSpreadScans && s.PixelMM >= 0 && s.PixelMM < 100) {
			return fmt.Errorf("spread calibration: scale %v at %v mm over %d scans, want a scale in [0.25, 4] over at least %d", s.Scale, s.PixelMM, s.Scans, MinSpreadScans)
		}
	}
	return nil
}

// Merge returns c with the parts o has (o wins); either may be nil.
func (c *Calibration) Merge(o *Calibration) *Calibration {
	out := &Calibration{DataConsistency: map[string]Dist{}, LineMotion: map[string]Dist{}, EdgeSparsity: map[string]Dist{}, Z: DefaultZ}
	for _, x := range []*Calibration{c, o} {
		if x == nil {
			continue
		}
		maps.Copy(out.DataConsistency, x.DataConsistency)
		maps.Copy(out.LineMotion, x.LineMotion)
		maps.Copy(out.EdgeSparsity, x.EdgeSparsity)
		if x.Z > 0 {
			out.Z = x.Z
		}
		if x.Source != "" {
			out.Source = x.Source
		}
		if x.Typicality != nil {
			out.Prior, out.Settings, out.Typicality = x.Prior, x.Settings, x.Typicality
		}
		if x.Uncertainty != nil {
			out.Uncertainty = x.Uncertainty
		}
		if len(x.Spread) > 0 {
			out.Spread = x.Spread
		}
	}
	return out
}

// StdScale is the factor for a sampled std at pixel size pixelMM (0:
// unknown): 1 without a spread calibration; the one entry's scale when
// there is one; else linear in log pixel size between the two entries
// around it, the nearest entry's beyond them. An unknown pixel size takes
// the first entry, the one measured on the prior's own training scans.
func (c *Calibration) StdScale(pixelMM float64) float64 {
	var known []Spread
	for _, s := range c.Spread {
		if s.PixelMM > 0 {
			known = append(known, s)
		}
	}
	switch {
	case len(c.Spread) == 0:
		return 1
	case len(c.Spread) == 1 || !(pixelMM > 0) || len(known) == 0:
		return c.Spread[0].Scale
	}
	slices.SortFunc(known, func(a, b Spread) int { return cmp.Compare(a.PixelMM, b.PixelMM) })
	if pixelMM <= known[0].PixelMM {
		return known[0].Scale
	}
	for i := 1; i < len(known); i++ {
		if lo, hi := known[i-1], known[i]; pixelMM <= hi.PixelMM {
			if hi.PixelMM == lo.PixelMM {
				return hi.Scale
			}
			t := math.Log(pixelMM/lo.PixelMM) / math.Log(hi.PixelMM/lo.PixelMM)
			return lo.Scale + t*(hi.Scale-lo.Scale)
		}
	}
	return known[len(known)-1].Scale
}
