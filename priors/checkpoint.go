package priors

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"reflect"
	"runtime/debug"
	"slices"
	"sort"
	"strings"

	"github.com/kspaced/kspaced/internal/safefile"
)

// Checkpoints are safetensors files: an 8-byte little-endian header length,
// a JSON header {name: {dtype, shape, data_offsets}, "__metadata__": {…}}
// and the raw little-endian tensor bytes. Model weights are stored under
// their parameter names; training checkpoints add "train.*" tensors (raw
// weights and Adam moments) and a "train_state" metadata entry.

// CheckpointFormat names the metadata layout; readers refuse other formats.
const CheckpointFormat = "kspaced-unet/1"

// Version is the code version recorded in checkpoints; release builds set it
// with -ldflags "-X github.com/kspaced/kspaced/priors.Version=…". When empty
// the module's build information is used.
var Version string

// CodeVersion is the version string recorded in new checkpoints.
func CodeVersion() string {
	if Version != "" {
		return Version
	}
	bi, ok := debug.ReadBuildInfo()
	if !ok {
		return "unknown"
	}
	v := bi.Main.Version
	for _, s := range bi.Settings {
		switch s.Key {
		case "vcs.revision":
			v += " " + s.Value
		case "vcs.modified":
			if s.Value == "true" {
				v += "+dirty"
			}
		}
	}
	return v
}

// Normalisation records how images were scaled into the network's range, so
// that inference applies the same map.
type Normalisation struct {
	// Scheme names the map, e.g. "per-scan: divide by the 99th-percentile magnitude".
	Scheme string `json:"scheme"`
	// Scale is a fixed factor applied after the scheme (1 if none).
	Scale float64 `json:"scale,omitempty"`
}

// Provenance says where a set of weights came from.
type Provenance struct {
	Data        string `json:"data"`      // human description of the training set
	DataHash    string `json:"data_hash"` // sha256 of the training images (HashDataset)
	Images      int    `json:"images"`
	Steps       int    `json:"steps"`  // optimiser steps taken
	EMLap       int    `json:"em_lap"` // expectation-maximisation lap (0: not EM)
	CodeVersion string `json:"code_version"`
	Seed        uint64 `json:"seed"`
	Crops       string `json:"crops,omitempty"` // what the network trained on when not whole images
}

// CheckpointMeta is the metadata block of a checkpoint.
type CheckpointMeta struct {
	Architecture  UNetConfig
	Normalisation Normalisation
	Provenance    Provenance
	CodeVersion   string // of the code that wrote the file
}

// Limits for reading: a header larger than this is corrupt, and a file may
// not claim more tensors than this.
const (
	ckptMaxHeader  = 64 << 20
	ckptMaxTensors = 1 << 16
	ckptMaxRank    = 8
)

type ckptTensor struct {
	name  string
	shape []int
	data  []float32
}

type ckptHeaderEntry struct {
	Dtype   string  `json:"dtype"`
	Shape   []int64 `json:"shape"`
	Offsets []int64 `json:"data_offsets"`
}

// writeSafetensors writes tensors (F32) and string metadata to w.
func writeSafetensors(w io.Writer, tensors []ckptTensor, meta map[string]string) error {
	// Hand-built JSON keeps the tensor order of the file equal to the header's.
	var hb bytes.Buffer
	hb.WriteByte('{')
	if len(meta) > 0 {
		m, err := json.Marshal(meta)
		if err != nil {
			return err
		}
		hb.WriteString(`"__metadata__":`)
		hb.Write(m)
	}
	var off int64
	for i, t := range tensors {
		n := 1
		for _, s := range t.shape {
			n *= s
		}
		if n != len(t.data) {
			return fmt.Errorf("tensor %s: shape %v but %d values", t.name, t.shape, len(t.data))
		}
		if i > 0 || len(meta) > 0 {
			hb.WriteByte(',')
		}
		name, err := json.Marshal(t.name)
		if err != nil {
			return err
		}
		shape := t.shape
		if shape == nil {
			shape = []int{}
		}
		e, err := json.Marshal(struct {
			Dtype   string  `json:"dtype"`
			Shape   []int   `json:"shape"`
			Offsets []int64 `json:"data_offsets"`
		}{"F32", shape, []int64{off, off + 4*int64(n)}})
		if err != nil {
			return err
		}
		hb.Write(name)
		hb.WriteByte(':')
		hb.Write(e)
		off += 4 * int64(n)
	}
	hb.WriteByte('}')
	for hb.Len()%8 != 0 { // the format pads the header with spaces to 8 bytes
		hb.WriteByte(' ')
	}
	var lenb [8]byte
	binary.LittleEndian.PutUint64(lenb[:], uint64(hb.Len()))
	if _, err := w.Write(lenb[:]); err != nil {
		return err
	}
	if _, err := w.Write(hb.Bytes()); err != nil {
		return err
	}
	buf := make([]byte, 0, 1<<16)
	for _, t := range tensors {
		for _, v := range t.data {
			buf = binary.LittleEndian.AppendUint32(buf, math.Float32bits(v))
			if len(buf) == cap(buf) {
				if _, err := w.Write(buf); err != nil {
					return err
				}
				buf = buf[:0]
			}
		}
	}
	_, err := w.Write(buf)
	return err
}

// readSafetensors parses a safetensors file of size bytes from r. Every
// length is checked against the bytes actually present before anything is
// allocated for it.
func readSafetensors(r io.ReaderAt, size int64) (map[string]ckptTensor, map[string]string, error) {
	if size < 8 {
		return nil, nil, fmt.Errorf("file of %d bytes is too short for a header", size)
	}
	var lenb [8]byte
	if _, err := r.ReadAt(lenb[:], 0); err != nil {
		return nil, nil, fmt.Errorf("header length: %w", err)
	}
	hl := binary.LittleEndian.Uint64(lenb[:])
	if hl < 2 || hl > ckptMaxHeader || hl > uint64(size-8) {
		return nil, nil, fmt.Errorf("header length %d impossible for a file of %d bytes", hl, size)
	}
	hdr := make([]byte, hl)
	if _, err := r.ReadAt(hdr, 8); err != nil {
		return nil, nil, fmt.Errorf("header: %w", err)
	}
	var raw map[string]json.RawMessage
	if err := json.Unmarshal(bytes.TrimRight(hdr, " "), &raw); err != nil {
		return nil, nil, fmt.Errorf("header JSON: %w", err)
	}
	if len(raw) > ckptMaxTensors {
		return nil, nil, fmt.Errorf("header lists %d tensors", len(raw))
	}
	meta := map[string]string{}
	if m, ok := raw["__metadata__"]; ok {
		if err := json.Unmarshal(m, &meta); err != nil {
			return nil, nil, fmt.Errorf("metadata: %w", err)
		}
		delete(raw, "__metadata__")
	}
	dataLen := size - 8 - int64(hl)
	type span struct {
		name       string
		begin, end int64
	}
	var spans []span
	entries := map[string]ckptHeaderEntry{}
	for name, m := range raw {
		var e ckptHeaderEntry
		if err := json.Unmarshal(m, &e); err != nil {
			return nil, nil, fmt.Errorf("tensor %q: %w", name, err)
		}
		if e.Dtype != "F32" {
			return nil, nil, fmt.Errorf("tensor %q: dtype %q (only F32 is supported)", name, e.Dtype)
		}
		if len(e.Shape) > ckptMaxRank || len(e.Offsets) != 2 {
			return nil, nil, fmt.Errorf("tensor %q: shape %v, offsets %v", name, e.Shape, e.Offsets)
		}
		n := int64(1)
		for _, s := range e.Shape {
			if s < 0 || (s > 0 && n > dataLen/s) {
				return nil, nil, fmt.Errorf("tensor %q: shape %v does not fit in %d data bytes", name, e.Shape, dataLen)
			}
			n *= s
		}
		b, en := e.Offsets[0], e.Offsets[1]
		if b < 0 || en < b || en > dataLen || en-b != 4*n {
			return nil, nil, fmt.Errorf("tensor %q: offsets [%d, %d) for %d values in %d data bytes", name, b, en, n, dataLen)
		}
		entries[name] = e
		spans = append(spans, span{name, b, en})
	}
	sort.Slice(spans, func(i, j int) bool { return spans[i].begin < spans[j].begin })
	for i := 1; i < len(spans); i++ {
		if spans[i].begin < spans[i-1].end {
			return nil, nil, fmt.Errorf("tensors %q and %q overlap", spans[i-1].name, spans[i].name)
		}
	}
	out := make(map[string]ckptTensor, len(entries))
	for _, s := range spans {
		e := entries[s.name]
		b := make([]byte, s.end-s.begin)
		if _, err := r.ReadAt(b, 8+int64(hl)+s.begin); err != nil {
			return nil, nil, fmt.Errorf("tensor %q data: %w", s.name, err)
		}
		t := ckptTensor{name: s.name, shape: make([]int, len(e.Shape)), data: make([]float32, len(b)/4)}
		for i, v := range e.Shape {
			t.shape[i] = int(v)
		}
		for i := range t.data {
			t.data[i] = math.Float32frombits(binary.LittleEndian.Uint32(b[4*i:]))
		}
		out[s.name] = t
	}
	return out, meta, nil
}

func readSafetensorsFile(path string) (map[string]ckptTensor, map[string]string, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, nil, err
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return nil, nil, err
	}
	t, m, err := readSafetensors(f, st.Size())
	if err != nil {
		return nil, nil, fmt.Errorf("read checkpoint %s: %w", path, err)
	}
	return t, m, nil
}

// writeFileAtomic writes through a synced temporary file in the same
// directory, renamed into place (internal/safefile), so a crash never leaves
// a half-written checkpoint.
func writeFileAtomic(path string, write func(io.Writer) error) error {
	if err := safefile.Write(path, 0o644, write); err != nil {
		return fmt.Errorf("write checkpoint: %w", err)
	}
	return nil
}

func (m CheckpointMeta) encode() (map[string]string, error) {
	arch, err := json.Marshal(m.Architecture)
	if err != nil {
		return nil, err
	}
	norm, err := json.Marshal(m.Normalisation)
	if err != nil {
		return nil, err
	}
	prov, err := json.Marshal(m.Provenance)
	if err != nil {
		return nil, err
	}
	a := m.Architecture
	return map[string]string{
		"format":        CheckpointFormat,
		"architecture":  string(arch),
		"image_size":    fmt.Sprintf("%dx%dx%d", a.Channels, a.Rows, a.Cols),
		"normalisation": string(norm),
		"provenance":    string(prov),
		"code_version":  m.CodeVersion,
	}, nil
}

func decodeMeta(meta map[string]string) (*CheckpointMeta, error) {
	if f := meta["format"]; f != CheckpointFormat {
		return nil, fmt.Errorf("format %q, want %q", f, CheckpointFormat)
	}
	var m CheckpointMeta
	dec := func(key string, v any) error {
		s, ok := meta[key]
		if !ok {
			return fmt.Errorf("metadata has no %q", key)
		}
		d := json.NewDecoder(strings.NewReader(s))
		d.DisallowUnknownFields()
		if err := d.Decode(v); err != nil {
			return fmt.Errorf("metadata %q: %w", key, err)
		}
		return nil
	}
	if err := dec("architecture", &m.Architecture); err != nil {
		return nil, err
	}
	if err := m.Architecture.Validate(); err != nil {
		return nil, fmt.Errorf("metadata architecture: %w", err)
	}
	a := m.Architecture
	if s, want := meta["image_size"], fmt.Sprintf("%dx%dx%d", a.Channels, a.Rows, a.Cols); s != want {
		return nil, fmt.Errorf("image size %q disagrees with the architecture (%s)", s, want)
	}
	if err := dec("normalisation", &m.Normalisation); err != nil {
		return nil, err
	}
	if err := dec("provenance", &m.Provenance); err != nil {
		return nil, err
	}
	m.CodeVersion = meta["code_version"]
	return &m, nil
}

// modelTensors returns the network's current weights as checkpoint tensors.
func (u *UNet) modelTensors(prefix string) []ckptTensor {
	var ts []ckptTensor
	for _, p := range u.params {
		v := make([]float32, p.Len())
		u.be.Download(v, p.Value)
		ts = append(ts, ckptTensor{name: prefix + p.Name, shape: slices.Clone(p.Shape), data: v})
	}
	return ts
}

// Save writes the network's weights and meta to path (meta.Architecture and
// CodeVersion are filled in from the network and this build).
func (u *UNet) Save(path string, meta CheckpointMeta) error {
	return u.save(path, meta, nil, nil)
}

func (u *UNet) save(path string, meta CheckpointMeta, extra []ckptTensor, extraMeta map[string]string) error {
	meta.Architecture = u.Config()
	meta.CodeVersion = CodeVersion()
	md, err := meta.encode()
	if err != nil {
		return fmt.Errorf("write checkpoint %s: %w", path, err)
	}
	for k, v := range extraMeta {
		md[k] = v
	}
	ts := append(u.modelTensors(""), extra...)
	return writeFileAtomic(path, func(w io.Writer) error { return writeSafetensors(w, ts, md) })
}

// LoadUNet builds the network a checkpoint describes and loads its weights
// (on the CPU backend).
func LoadUNet(path string) (*UNet, *CheckpointMeta, error) {
	ts, md, err := readSafetensorsFile(path)
	if err != nil {
		return nil, nil, err
	}
	u, meta, err := unetFromTensors(ts, md)
	if err != nil {
		return nil, nil, fmt.Errorf("read checkpoint %s: %w", path, err)
	}
	return u, meta, nil
}

// unetFromTensors builds the network a checkpoint's metadata describes and
// loads its tensors into it.
func unetFromTensors(ts map[string]ckptTensor, md map[string]string) (*UNet, *CheckpointMeta, error) {
	meta, err := decodeMeta(md)
	if err != nil {
		return nil, nil, err
	}
	// Check the tensors against the architecture before allocating the
	// network, so that a small file cannot claim a huge one.
	if err := checkTensors(meta.Architecture, ts); err != nil {
		return nil, nil, err
	}
	h, _, err := covHeadFromTensors(ts, md)
	if err != nil {
		return nil, nil, err
	}
	u, err := NewUNet(meta.Architecture, 0)
	if err != nil {
		return nil, nil, err
	}
	u.uploadWeights(ts)
	if h != nil {
		if err := u.SetCovariance(h); err != nil {
			return nil, nil, err
		}
	}
	return u, meta, nil
}

// Load replaces the network's weights with a checkpoint's. A checkpoint of a
// different architecture is refused.
func (u *UNet) Load(path string) (*CheckpointMeta, error) {
	ts, md, err := readSafetensorsFile(path)
	if err != nil {
		return nil, err
	}
	meta, err := u.checkMeta(md)
	if err != nil {
		return nil, fmt.Errorf("read checkpoint %s: %w", path, err)
	}
	if err := u.setWeights(ts); err != nil {
		return nil, fmt.Errorf("read checkpoint %s: %w", path, err)
	}
	return meta, nil
}

func (u *UNet) checkMeta(md map[string]string) (*CheckpointMeta, error) {
	meta, err := decodeMeta(md)
	if err != nil {
		return nil, err
	}
	if !unetSameConfig(meta.Architecture, u.cfg) {
		a, _ := json.Marshal(meta.Architecture)
		b, _ := json.Marshal(u.cfg)
		return nil, fmt.Errorf("architecture mismatch: checkpoint has %s, network is %s", a, b)
	}
	return meta, nil
}

func unetSameConfig(a, b UNetConfig) bool {
	return reflect.DeepEqual(sizeFreeConfig(a), sizeFreeConfig(b))
}

// checkTensors reports whether ts holds every parameter of cfg with its
// shape, and nothing else but "train." and "cov." (covariance head) tensors.
func checkTensors(cfg UNetConfig, ts map[string]ckptTensor) error {
	var err error
	names := map[string]bool{}
	cfg.walk(func(name string, shape ...int) {
		names[name] = true
		if err != nil {
			return
		}
		t, ok := ts[name]
		switch {
		case !ok:
			err = fmt.Errorf("tensor %q missing", name)
		case !slices.Equal(t.shape, shape):
			err = fmt.Errorf("tensor %q has shape %v, the architecture needs %v", name, t.shape, shape)
		}
	})
	if err != nil {
		return err
	}
	for name := range ts {
		if !names[name] && !strings.HasPrefix(name, "train.") && !strings.HasPrefix(name, covPrefix) {
			return fmt.Errorf("unexpected tensor %q", name)
		}
	}
	return nil
}

// setWeights checks that ts holds exactly the network's parameters (plus
// any "train." tensors) with the right shapes, then loads them. Nothing
// changes on error.
func (u *UNet) setWeights(ts map[string]ckptTensor) error {
	if err := checkTensors(u.cfg, ts); err != nil {
		return err
	}
	u.uploadWeights(ts)
	return nil
}

// uploadWeights loads checked tensors (checkTensors) into the parameters.
func (u *UNet) uploadWeights(ts map[string]ckptTensor) {
	for _, p := range u.params {
		u.be.Upload(p.Value, ts[p.Name].data)
	}
}

var errCkptNoTrainState = errors.New("checkpoint has no training state (it holds weights only)")
