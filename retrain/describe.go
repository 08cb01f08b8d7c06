package retrain

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"

	"github.com/kspaced/kspaced/priors"
	"github.com/kspaced/kspaced/priors/builtin"
	"github.com/kspaced/kspaced/qc"
)

// Description is what `kspaced prior show` prints about a checkpoint.
type Description struct {
	Path   string
	SHA256 string
	Bytes  int64
	Info   *priors.PriorInfo
	Params int // network parameters (U-Net), or the Gaussian's values
	// Laps are the records of the EM run folder the checkpoint sits in
	// (laps.json beside it), nil when there is none.
	Laps []LapRecord
	// Spread is the std calibration of its QC sidecar (nil: none).
	Spread []qc.Spread
}

// Describe reads a prior checkpoint and, when it sits in an EM run folder,
// that run's lap records.
func Describe(path string) (*Description, error) {
	raw, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("describe prior: %w", err)
	}
	laps, _ := os.ReadFile(filepath.Join(filepath.Dir(path), "laps.json"))
	d, err := describe(path, raw, laps)
	if err != nil {
		return nil, err
	}
	if cal, err := qc.LoadSidecar(path); err == nil && cal != nil {
		d.Spread = cal.Spread
	}
	return d, nil
}

// DescribeBuiltin describes the default prior embedded in the binary.
func DescribeBuiltin() (*Description, error) {
	d, err := describe(builtin.Name, builtin.Checkpoint(), builtin.Laps())
	if err != nil {
		return nil, err
	}
	if cal, err := qc.ParseCalibration(builtin.QCCalibration()); err == nil {
		d.Spread = cal.Spread
	}
	return d, nil
}

func describe(name string, raw, laps []byte) (*Description, error) {
	d, info, err := priors.LoadPriorBytes(name, raw)
	if err != nil {
		return nil, err
	}
	h := sha256.Sum256(raw)
	desc := &Description{Path: name, SHA256: hex.EncodeToString(h[:]), Bytes: int64(len(raw)), Info: info}
	switch p := d.(type) {
	case *priors.UNet:
		desc.Params = p.Config().ParamCount()
	case *priors.Gaussian:
		c, r, w := p.Shape()
		desc.Params = c * r * w * (2 + info.Rank)
	}
	if laps != nil {
		var recs []LapRecord
		if json.Unmarshal(laps, &recs) == nil {
			desc.Laps = recs
		}
	}
	return desc, nil
}

// Write prints the description for people.
func (d *Description) Write(w io.Writer) error {
	i := d.Info
	var b strings.Builder
	fmt.Fprintf(&b, "prior:          %s\n", d.Path)
	fmt.Fprintf(&b, "sha256:         %s (%d bytes)\n", d.SHA256, d.Bytes)
	fmt.Fprintf(&b, "kind:           %s\n", i.Kind)
	if a := i.Architecture; a != nil {
		fmt.Fprintf(&b, "architecture:   U-Net, widths %v, %d block(s) per level, attention at levels %v (%d head(s)), "+
			"pixel-unshuffle %d, group norm %d groups, noise embedding %d; %d parameters\n",
			a.Widths, a.Blocks, a.Attention, a.Heads, a.Unshuffle, a.Groups, a.EmbedDim, d.Params)
		fmt.Fprintf(&b, "image size:     any matrix: reflect-padded to a multiple of %d and cropped back (built at %d×%d)\n",
			a.Stride(), a.Rows, a.Cols)
	} else {
		fmt.Fprintf(&b, "architecture:   Gaussian N(μ, D + UUᵀ), rank %d; %d values\n", i.Rank, d.Params)
		fmt.Fprintf(&b, "image size:     %d×%d only (per-pixel mean and covariance)\n", i.Rows, i.Cols)
	}
	fmt.Fprintf(&b, "normalisation:  %s\n", orNone(i.Normalisation.Scheme))
	p := i.Provenance
	fmt.Fprintf(&b, "training data:  %s\n", orNone(p.Data))
	fmt.Fprintf(&b, "data hash:      %s (%d images)\n", orNone(p.DataHash), p.Images)
	if p.EMLap > 0 || i.Kind == priors.KindGaussian {
		fmt.Fprintf(&b, "EM lap:         %d\n", p.EMLap)
	}
	fmt.Fprintf(&b, "steps:          %d\n", p.Steps)
	if p.Crops != "" {
		fmt.Fprintf(&b, "trained on:     %s\n", p.Crops)
	}
	fmt.Fprintf(&b, "seed:           %d\n", p.Seed)
	fmt.Fprintf(&b, "code version:   %s\n", orNone(firstNonEmpty(p.CodeVersion, i.CodeVersion)))
	switch c := i.Covariance; {
	case c != nil:
		fmt.Fprintf(&b, "covariance:     diagonal head %q (widths %v, unshuffle %d), %d steps on %s (%s)\n",
			c.Network, c.Architecture.Widths, c.Architecture.Unshuffle, c.Provenance.Steps, orNone(c.Provenance.Data), orNone(c.Provenance.Crops))
	case i.Kind == priors.KindGaussian:
		fmt.Fprintf(&b, "covariance:     diagonal exact (Gaussian)\n")
	default:
		fmt.Fprintf(&b, "covariance:     jacobian only (no diagonal head: kspaced prior fit-covariance)\n")
	}
	if len(d.Spread) == 0 {
		fmt.Fprintf(&b, "std scale:      none: the std is used as sampled (kspaced prior check-spread)\n")
	}
	for k, s := range d.Spread {
		label := "std scale:     "
		if k > 0 {
			label = "               "
		}
		fmt.Fprintf(&b, "%s × %.3f at %.2f mm pixels (median of %d held-out-line ratios, quartiles %.3f–%.3f)\n", label, s.Scale, s.PixelMM, s.Scans, s.Q1, s.Q3)
	}
	if len(d.Laps) > 0 {
		fmt.Fprintf(&b, "laps (%s):\n", filepath.Join(filepath.Dir(d.Path), "laps.json"))
		for _, r := range d.Laps {
			mark := " "
			if r.Best {
				mark = "*"
			}
			score := "no validation"
			if r.Validation.N > 0 {
				score = r.Validation.scores()
			}
			extra := ""
			if len(r.Attempts) > 1 {
				extra = fmt.Sprintf("; %d attempts, learning rate %.3g", len(r.Attempts), r.LR)
			}
			if r.GuardWarning != "" {
				extra += "; WARNING: " + r.GuardWarning
			}
			if r.WorseThanStart != "" {
				extra += "; WARNING: " + r.WorseThanStart
			}
			fmt.Fprintf(&b, " %s lap %2d %-8s %5d M-step steps, %s%s\n", mark, r.Lap, r.Kind, r.MStepSteps, score, extra)
		}
		fmt.Fprintf(&b, "  (* best lap by validation, copied to %s)\n", BestCheckpoint)
	}
	_, err := io.WriteString(w, b.String())
	return err
}

func orNone(s string) string {
	if s == "" {
		return "(not recorded)"
	}
	return s
}

func firstNonEmpty(a ...string) string {
	for _, s := range a {
		if s != "" {
			return s
		}
	}
	return ""
}
