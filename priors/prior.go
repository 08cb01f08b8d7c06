package priors

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
)

// GaussianFormat names the metadata layout of a Gaussian prior checkpoint:
// a safetensors file with tensors "mean" and "diag" ([c, h, w]) and "factor"
// ([c·h·w, r], the low-rank U row-major), all F32.
const GaussianFormat = "kspaced-gaussian/1"

// Prior kinds reported by PriorInfo.
const (
	KindUNet     = "unet"
	KindGaussian = "gaussian"
)

// GaussianMeta is what a Gaussian checkpoint records besides its tensors.
type GaussianMeta struct {
	Normalisation Normalisation
	Provenance    Provenance
}

// PriorInfo describes a prior loaded by LoadPrior.
type PriorInfo struct {
	Name                 string // file name
	Kind                 string // KindUNet or KindGaussian
	Channels, Rows, Cols int
	Rank                 int         // Gaussian: columns of the low-rank factor
	Architecture         *UNetConfig // U-Net only
	// Covariance describes the U-Net's diagonal covariance head, nil if none.
	Covariance    *CovHeadMeta
	Normalisation Normalisation
	Provenance    Provenance
	CodeVersion   string
}

// SaveGaussian writes g with meta to path atomically (temporary file and
// rename) in the GaussianFormat.
func SaveGaussian(path string, g *Gaussian, meta GaussianMeta) error {
	if g == nil {
		return fmt.Errorf("write gaussian prior %s: nil prior", path)
	}
	norm, err := json.Marshal(meta.Normalisation)
	if err != nil {
		return fmt.Errorf("write gaussian prior %s: %w", path, err)
	}
	meta.Provenance.CodeVersion = CodeVersion()
	prov, err := json.Marshal(meta.Provenance)
	if err != nil {
		return fmt.Errorf("write gaussian prior %s: %w", path, err)
	}
	f32 := func(x []float64) []float32 {
		y := make([]float32, len(x))
		for i, v := range x {
			y[i] = float32(v)
		}
		return y
	}
	ts := []ckptTensor{
		{name: "mean", shape: []int{g.c, g.h, g.w}, data: f32(g.mu)},
		{name: "diag", shape: []int{g.c, g.h, g.w}, data: f32(g.d)},
		{name: "factor", shape: []int{g.n, g.r}, data: f32(g.u)},
	}
	md := map[string]string{
		"format":        GaussianFormat,
		"image_size":    fmt.Sprintf("%dx%dx%d", g.c, g.h, g.w),
		"rank":          strconv.Itoa(g.r),
		"normalisation": string(norm),
		"provenance":    string(prov),
		"code_version":  CodeVersion(),
	}
	return writeFileAtomic(path, func(w io.Writer) error { return writeSafetensors(w, ts, md) })
}

// LoadGaussian reads a Gaussian prior checkpoint.
func LoadGaussian(path string) (*Gaussian, *PriorInfo, error) {
	ts, md, err := readSafetensorsFile(path)
	if err != nil {
		return nil, nil, err
	}
	g, info, err := decodeGaussian(ts, md)
	if err != nil {
		return nil, nil, fmt.Errorf("read gaussian prior %s: %w", path, err)
	}
	info.Name = filepath.Base(path)
	return g, info, nil
}

func decodeGaussian(ts map[string]ckptTensor, md map[string]string) (*Gaussian, *PriorInfo, error) {
	if f := md["format"]; f != GaussianFormat {
		return nil, nil, fmt.Errorf("format %q, want %q", f, GaussianFormat)
	}
	var c, h, w int
	if _, err := fmt.Sscanf(md["image_size"], "%dx%dx%d", &c, &h, &w); err != nil {
		return nil, nil, fmt.Errorf("image size %q: %v", md["image_size"], err)
	}
	if c < 1 || h < 1 || w < 1 || c > 64 || h > 4096 || w > 4096 || c*h*w > maxPriorLen {
		return nil, nil, fmt.Errorf("image size %dx%dx%d out of range", c, h, w)
	}
	n := c * h * w
	r, err := strconv.Atoi(md["rank"])
	if err != nil || r < 0 || r > n {
		return nil, nil, fmt.Errorf("rank %q for dimension %d", md["rank"], n)
	}
	want := map[string][]int{"mean": {c, h, w}, "diag": {c, h, w}, "factor": {n, r}}
	for name, shape := range want {
		t, ok := ts[name]
		if !ok {
			return nil, nil, fmt.Errorf("tensor %q missing", name)
		}
		if !slices.Equal(t.shape, shape) {
			return nil, nil, fmt.Errorf("tensor %q has shape %v, want %v", name, t.shape, shape)
		}
	}
	if len(ts) != len(want) {
		for name := range ts {
			if _, ok := want[name]; !ok {
				return nil, nil, fmt.Errorf("unexpected tensor %q", name)
			}
		}
	}
	info := &PriorInfo{Kind: KindGaussian, Channels: c, Rows: h, Cols: w, Rank: r, CodeVersion: md["code_version"]}
	for key, v := range map[string]any{"normalisation": &info.Normalisation, "provenance": &info.Provenance} {
		s, ok := md[key]
		if !ok {
			return nil, nil, fmt.Errorf("metadata has no %q", key)
		}
		d := json.NewDecoder(strings.NewReader(s))
		d.DisallowUnknownFields()
		if err := d.Decode(v); err != nil {
			return nil, nil, fmt.Errorf("metadata %q: %w", key, err)
		}
	}
	g, err := NewGaussian(ts["mean"].data, ts["diag"].data, ts["factor"].data, c, h, w)
	if err != nil {
		return nil, nil, err
	}
	return g, info, nil
}

// LoadPrior reads a prior checkpoint of either kind, a U-Net
// (CheckpointFormat) or a Gaussian (GaussianFormat), telling them apart by
// the metadata's "format".
func LoadPrior(path string) (Denoiser, *PriorInfo, error) {
	ts, md, err := readSafetensorsFile(path)
	if err != nil {
		return nil, nil, err
	}
	return decodePrior(path, ts, md)
}

// LoadPriorBytes reads a prior checkpoint held in memory (an embedded one),
// named name in errors and in its PriorInfo.
func LoadPriorBytes(name string, raw []byte) (Denoiser, *PriorInfo, error) {
	ts, md, err := readSafetensors(bytes.NewReader(raw), int64(len(raw)))
	if err != nil {
		return nil, nil, fmt.Errorf("read checkpoint %s: %w", name, err)
	}
	return decodePrior(name, ts, md)
}

func decodePrior(path string, ts map[string]ckptTensor, md map[string]string) (Denoiser, *PriorInfo, error) {
	switch f := md["format"]; f {
	case GaussianFormat:
		g, info, err := decodeGaussian(ts, md)
		if err != nil {
			return nil, nil, fmt.Errorf("read prior %s: %w", path, err)
		}
		info.Name = filepath.Base(path)
		return g, info, nil
	case CheckpointFormat:
		u, meta, err := unetFromTensors(ts, md)
		if err != nil {
			return nil, nil, fmt.Errorf("read prior %s: %w", path, err)
		}
		a := meta.Architecture
		info := &PriorInfo{Name: filepath.Base(path), Kind: KindUNet, Channels: a.Channels, Rows: a.Rows, Cols: a.Cols,
			Architecture: &a, Normalisation: meta.Normalisation, Provenance: meta.Provenance, CodeVersion: meta.CodeVersion}
		if u.cov != nil {
			info.Covariance = u.cov.meta
		}
		return u, info, nil
	default:
		return nil, nil, fmt.Errorf("read prior %s: format %q is neither %q nor %q", path, f, CheckpointFormat, GaussianFormat)
	}
}
