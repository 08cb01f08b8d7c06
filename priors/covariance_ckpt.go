package priors

import (
	"encoding/json"
	"fmt"
	"io"
	"sort"
	"strings"
)

// A covariance head lives in its prior's checkpoint: its weights under
// "cov." (training state under "cov.train."), its description in the
// "covariance" metadata entry. Readers that know nothing of heads (older
// builds) refuse the extra tensors; a prior without them loads as before.

const (
	covPrefix      = "cov."
	covTrainPrefix = "cov.train."
	covMetaKey     = "covariance"
	covStateKey    = "cov_train_state"
)

// CovHeadMeta is the "covariance" metadata of a checkpoint.
type CovHeadMeta struct {
	Network          string     `json:"network"`
	Architecture     UNetConfig `json:"architecture"`
	Parameterisation string     `json:"parameterisation"`
	Provenance       Provenance `json:"provenance"`
}

// SaveCovariance writes the prior checkpoint at priorPath with the head h
// (replacing any head it had) to outPath, atomically. extra tensors and
// metadata (a training state) are added when given.
func SaveCovariance(priorPath, outPath string, h *CovHead, prov Provenance, extra []ckptTensor, extraMeta map[string]string) error {
	ts, md, err := readSafetensorsFile(priorPath)
	if err != nil {
		return err
	}
	if md["format"] != CheckpointFormat {
		return fmt.Errorf("write covariance head: %s is not a U-Net prior (format %q); a Gaussian prior's diagonal is exact", priorPath, md["format"])
	}
	prov.CodeVersion = CodeVersion()
	meta, err := json.Marshal(CovHeadMeta{Network: h.network, Architecture: h.net.Config(), Parameterisation: CovHeadParameterisation, Provenance: prov})
	if err != nil {
		return err
	}
	var names []string
	for name := range ts {
		if !strings.HasPrefix(name, covPrefix) && !strings.HasPrefix(name, "train.") {
			names = append(names, name)
		}
	}
	sort.Strings(names)
	var out []ckptTensor
	for _, name := range names {
		out = append(out, ts[name])
	}
	out = append(out, h.net.modelTensors(covPrefix)...)
	out = append(out, extra...)
	delete(md, covStateKey)
	delete(md, "train_state")
	md[covMetaKey] = string(meta)
	for k, v := range extraMeta {
		md[k] = v
	}
	return writeFileAtomic(outPath, func(w io.Writer) error { return writeSafetensors(w, out, md) })
}

// covHeadFromTensors builds the head a checkpoint describes, nil if it has
// none.
func covHeadFromTensors(ts map[string]ckptTensor, md map[string]string) (*CovHead, *CovHeadMeta, error) {
	s, ok := md[covMetaKey]
	if !ok {
		for name := range ts {
			if strings.HasPrefix(name, covPrefix) {
				return nil, nil, fmt.Errorf("tensor %q but no %q metadata", name, covMetaKey)
			}
		}
		return nil, nil, nil
	}
	var m CovHeadMeta
	d := json.NewDecoder(strings.NewReader(s))
	d.DisallowUnknownFields()
	if err := d.Decode(&m); err != nil {
		return nil, nil, fmt.Errorf("metadata %q: %w", covMetaKey, err)
	}
	if m.Parameterisation != CovHeadParameterisation {
		return nil, nil, fmt.Errorf("covariance head parameterised as %q, this build reads %q", m.Parameterisation, CovHeadParameterisation)
	}
	if err := m.Architecture.Validate(); err != nil {
		return nil, nil, fmt.Errorf("covariance head: %w", err)
	}
	sub := map[string]ckptTensor{}
	for name, t := range ts {
		if strings.HasPrefix(name, covPrefix) && !strings.HasPrefix(name, covTrainPrefix) {
			sub[strings.TrimPrefix(name, covPrefix)] = t
		}
	}
	if err := checkTensors(m.Architecture, sub); err != nil {
		return nil, nil, fmt.Errorf("covariance head: %w", err)
	}
	u, err := NewUNet(m.Architecture, 0)
	if err != nil {
		return nil, nil, fmt.Errorf("covariance head: %w", err)
	}
	u.uploadWeights(sub)
	return &CovHead{net: u, network: m.Network, meta: &m}, &m, nil
}

// LoadCovHead reads only the covariance head of a checkpoint (nil, nil,
// ErrNoCovariance when it has none).
func LoadCovHead(path string) (*CovHead, *CovHeadMeta, error) {
	ts, md, err := readSafetensorsFile(path)
	if err != nil {
		return nil, nil, err
	}
	h, m, err := covHeadFromTensors(ts, md)
	if err != nil {
		return nil, nil, fmt.Errorf("read %s: %w", path, err)
	}
	if h == nil {
		return nil, nil, fmt.Errorf("read %s: %w", path, ErrNoCovariance)
	}
	return h, m, nil
}
