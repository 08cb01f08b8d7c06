package priors

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"testing"

	"github.com/kspaced/kspaced/internal/testutil"
)

func ckptMeta() CheckpointMeta {
	return CheckpointMeta{
		Normalisation: Normalisation{Scheme: "per-scan 99th-percentile magnitude", Scale: 1},
		Provenance:    Provenance{Data: "unit test", DataHash: strings.Repeat("ab", 32), Images: 3, Steps: 7, EMLap: 2, Seed: 4},
	}
}

func TestCheckpointRoundTrip(t *testing.T) {
	u := unetRandomised(t, unetTinyConfig(2), 1)
	path := filepath.Join(t.TempDir(), "w.safetensors")
	if err := u.Save(path, ckptMeta()); err != nil {
		t.Fatal(err)
	}
	v, meta, err := LoadUNet(path)
	if err != nil {
		t.Fatal(err)
	}
	a, b := trainWeights(u), trainWeights(v)
	for i := range a {
		if a[i] != b[i] {
			t.Fatalf("weight %d: saved %g, loaded %g", i, a[i], b[i])
		}
	}
	if !unetSameConfig(meta.Architecture, u.Config()) {
		t.Errorf("architecture %+v", meta.Architecture)
	}
	want := ckptMeta()
	if meta.Normalisation != want.Normalisation || meta.Provenance != want.Provenance || meta.CodeVersion == "" {
		t.Errorf("metadata %+v", meta)
	}
	// Load into an existing network of the same architecture.
	w, err := NewUNet(unetTinyConfig(2), 77)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := w.Load(path); err != nil {
		t.Fatal(err)
	}
	c := trainWeights(w)
	for i := range a {
		if a[i] != c[i] {
			t.Fatalf("weight %d after Load: %g, want %g", i, c[i], a[i])
		}
	}
}

func TestCheckpointArchitectureMismatch(t *testing.T) {
	u := unetRandomised(t, unetTinyConfig(1), 1)
	path := filepath.Join(t.TempDir(), "w.safetensors")
	if err := u.Save(path, ckptMeta()); err != nil {
		t.Fatal(err)
	}
	other := unetTinyConfig(1)
	other.Widths = []int{8, 24}
	w, err := NewUNet(other, 1)
	if err != nil {
		t.Fatal(err)
	}
	before := trainWeights(w)
	_, err = w.Load(path)
	if err == nil || !strings.Contains(err.Error(), "architecture mismatch") || !strings.Contains(err.Error(), "[8,16]") {
		t.Fatalf("loading into another architecture: %v", err)
	}
	after := trainWeights(w)
	for i := range before {
		if before[i] != after[i] {
			t.Fatal("a refused load changed the weights")
		}
	}
}

// ckptRaw assembles a safetensors file from a header (any JSON) and data.
func ckptRaw(header string, data []byte) []byte {
	var b bytes.Buffer
	binary.Write(&b, binary.LittleEndian, uint64(len(header)))
	b.WriteString(header)
	b.Write(data)
	return b.Bytes()
}

func TestCheckpointCorruptFiles(t *testing.T) {
	u := unetRandomised(t, unetTinyConfig(1), 1)
	dir := t.TempDir()
	good := filepath.Join(dir, "good.safetensors")
	if err := u.Save(good, ckptMeta()); err != nil {
		t.Fatal(err)
	}
	raw, err := os.ReadFile(good)
	if err != nil {
		t.Fatal(err)
	}
	hl := binary.LittleEndian.Uint64(raw)
	header := string(raw[8 : 8+hl])
	edit := func(old, new string) []byte {
		h := strings.Replace(header, old, new, 1)
		return ckptRaw(h, raw[8+hl:])
	}
	huge := append([]byte(nil), raw...)
	binary.LittleEndian.PutUint64(huge, 1<<62)
	longer := append([]byte(nil), raw...)
	binary.LittleEndian.PutUint64(longer, uint64(len(raw)))
	eight := make([]byte, 8)
	var m map[string]json.RawMessage
	if err := json.Unmarshal([]byte(strings.TrimRight(header, " ")), &m); err != nil {
		t.Fatal(err)
	}
	cases := map[string][]byte{
		"empty":              {},
		"short length":       raw[:5],
		"huge header length": huge,
		"header past end":    longer,
		"zero header":        eight,
		"truncated data":     raw[:len(raw)-9],
		"bad JSON":           ckptRaw("{not json", nil),
		"wrong dtype":        edit(`"dtype":"F32"`, `"dtype":"F16"`),
		"offsets past end":   edit(`"data_offsets":[0,`, `"data_offsets":[1000000000,`),
		"negative offset":    edit(`"data_offsets":[0,`, `"data_offsets":[-4,`),
		"shape vs offsets":   edit(`"shape":[16,16]`, `"shape":[16,15]`),
		"negative shape":     edit(`"shape":[16,16]`, `"shape":[-16,-16]`),
		"overflowing shape":  edit(`"shape":[16,16]`, `"shape":[4611686018427387904,4611686018427387904]`),
		"overlap":            edit(`"data_offsets":[1024,`, `"data_offsets":[1020,`),
		"missing tensor":     edit(`"emb.fc1.w"`, `"emb.fcX.w"`),
		"wrong format":       edit(CheckpointFormat, "other/1"),
		"bad architecture":   edit(`\"groups\":4`, `\"groups\":3`),
		"image size":         edit(`"image_size":"2x16x16"`, `"image_size":"2x16x17"`),
		"unknown arch field": edit(`\"groups\":4`, `\"groups\":4,\"extra\":1`),
		"no metadata":        edit(`"__metadata__"`, `"__other__"`),
		// A valid huge architecture in a small file must fail before the
		// network is allocated (it would need gigabytes).
		"huge architecture": edit(`\"widths\":[8,16]`, `\"widths\":[1024,1024]`),
	}
	for name, b := range cases {
		p := filepath.Join(dir, strings.ReplaceAll(name, " ", "_"))
		if err := os.WriteFile(p, b, 0o644); err != nil {
			t.Fatal(err)
		}
		// Both ways in: LoadUNet, and LoadPrior as recon --prior uses it.
		for loader, load := range map[string]func(string) error{
			"LoadUNet":  func(p string) error { _, _, err := LoadUNet(p); return err },
			"LoadPrior": func(p string) error { _, _, err := LoadPrior(p); return err },
		} {
			var before, after runtime.MemStats
			runtime.ReadMemStats(&before)
			err := load(p)
			runtime.ReadMemStats(&after)
			if a := after.TotalAlloc - before.TotalAlloc; a > 64<<20 {
				t.Errorf("%s, %s: loading allocated %d MiB", name, loader, a>>20)
			}
			if err == nil {
				t.Errorf("%s, %s: loaded", name, loader)
			} else if !strings.Contains(err.Error(), p) {
				t.Errorf("%s, %s: error %q does not name the file", name, loader, err)
			}
		}
	}
	if _, _, err := LoadUNet(good); err != nil {
		t.Fatalf("the unedited file fails: %v", err)
	}
	// The edits above must have matched something.
	for _, s := range []string{`\"widths\":[8,16]`, `"dtype":"F32"`, `"data_offsets":[0,`, `"shape":[16,16]`, `"data_offsets":[1024,`, `"emb.fc1.w"`, `\"groups\":4`, `"image_size":"2x16x16"`} {
		if !strings.Contains(header, s) {
			t.Errorf("header lacks %s; the corruption case is vacuous", s)
		}
	}
}

// FuzzReadSafetensors: any bytes give an error or a result, never a panic
// or an allocation beyond the input's size.
func FuzzReadSafetensors(f *testing.F) {
	f.Add(ckptRaw(`{"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}}`, make([]byte, 8)))
	f.Add(ckptRaw(`{"__metadata__":{"k":"v"},"a":{"dtype":"F32","shape":[],"data_offsets":[0,4]}}`, make([]byte, 4)))
	f.Add(ckptRaw(`{"a":{"dtype":"F32","shape":[1,2],"data_offsets":[0,8]},"b":{"dtype":"F32","shape":[1],"data_offsets":[4,8]}}`, make([]byte, 8)))
	f.Add([]byte{255, 255, 255, 255, 255, 255, 255, 127})
	f.Fuzz(func(t *testing.T, b []byte) {
		ts, _, err := readSafetensors(bytes.NewReader(b), int64(len(b)))
		if err != nil {
			return
		}
		total := 0
		for _, x := range ts {
			total += 4 * len(x.data)
		}
		if total > len(b) {
			t.Fatalf("%d tensor bytes from a %d-byte file", total, len(b))
		}
	})
}

// Interoperability with an independent reader and writer: a tiny
// safetensors implementation in Python (json + struct + numpy) reads a Go
// checkpoint, reports every tensor, and writes a modified copy (tensors ×2,
// keys reordered, header unpadded) that Go must load.
func TestCheckpointPythonInterop(t *testing.T) {
	py := testutil.PythonWith(t, "numpy")
	u := unetRandomised(t, unetTinyConfig(2), 3)
	dir := t.TempDir()
	src, dst := filepath.Join(dir, "go.safetensors"), filepath.Join(dir, "py.safetensors")
	if err := u.Save(src, ckptMeta()); err != nil {
		t.Fatal(err)
	}
	script := `
import json, struct, sys
import numpy as np
src, dst = sys.argv[1], sys.argv[2]
with open(src, "rb") as f:
    raw = f.read()
(n,) = struct.unpack("<Q", raw[:8])
assert (8 + n) % 8 == 0, "header not padded to 8 bytes"
header = json.loads(raw[8:8 + n])
meta = header.pop("__metadata__")
data = raw[8 + n:]
report, arrays = {}, {}
for name, e in header.items():
    assert e["dtype"] == "F32"
    b, end = e["data_offsets"]
    a = np.frombuffer(data[b:end], dtype="<f4").reshape(e["shape"])
    arrays[name] = a
    report[name] = {"shape": list(a.shape), "sum": float(a.astype(np.float64).sum()), "first": float(a.flat[0])}
meta["python"] = "rewritten"
out, off = {"__metadata__": meta}, 0
blobs = []
for name in sorted(arrays, reverse=True):
    b = (arrays[name] * 2).astype("<f4").tobytes()
    out[name] = {"dtype": "F32", "shape": list(arrays[name].shape), "data_offsets": [off, off + len(b)]}
    off += len(b)
    blobs.append(b)
h = json.dumps(out).encode()
with open(dst, "wb") as f:
    f.write(struct.pack("<Q", len(h)) + h + b"".join(blobs))
json.dump({"tensors": report, "meta": meta}, sys.stdout)
`
	out, err := exec.Command(py, "-c", script, src, dst).CombinedOutput()
	if err != nil {
		t.Fatalf("python: %v\n%s", err, out)
	}
	var rep struct {
		Tensors map[string]struct {
			Shape []int
			Sum   float64
			First float32
		}
		Meta map[string]string
	}
	if err := json.Unmarshal(out, &rep); err != nil {
		t.Fatalf("python output %q: %v", out, err)
	}
	if len(rep.Tensors) != len(u.Params()) {
		t.Fatalf("python saw %d tensors, network has %d", len(rep.Tensors), len(u.Params()))
	}
	for _, p := range u.Params() {
		r, ok := rep.Tensors[p.Name]
		if !ok {
			t.Fatalf("python did not see %s", p.Name)
		}
		v := make([]float32, p.Len())
		u.be.Download(v, p.Value)
		var s float64
		for _, x := range v {
			s += float64(x)
		}
		if len(r.Shape) != len(p.Shape) || math.Abs(r.Sum-s) > 1e-9*math.Max(1, math.Abs(s)) || r.First != v[0] {
			t.Errorf("%s: python %v sum %g first %g; go %v sum %g first %g", p.Name, r.Shape, r.Sum, r.First, p.Shape, s, v[0])
		}
	}
	var arch UNetConfig
	if err := json.Unmarshal([]byte(rep.Meta["architecture"]), &arch); err != nil || !unetSameConfig(arch, u.Config()) {
		t.Errorf("python read architecture %q (%v)", rep.Meta["architecture"], err)
	}
	v, meta, err := LoadUNet(dst)
	if err != nil {
		t.Fatalf("loading the python-written file: %v", err)
	}
	if meta.Provenance != ckptMeta().Provenance {
		t.Errorf("provenance after python: %+v", meta.Provenance)
	}
	a, b := trainWeights(u), trainWeights(v)
	for i := range a {
		if b[i] != 2*a[i] {
			t.Fatalf("weight %d: python wrote %g, want %g", i, b[i], 2*a[i])
		}
	}
}

func TestReadSafetensorsOverlapAndDtype(t *testing.T) {
	for name, tc := range map[string]struct {
		header string
		data   int
		want   string
	}{
		"overlap": {`{"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},"b":{"dtype":"F32","shape":[2],"data_offsets":[4,12]}}`, 12, "overlap"},
		"dtype":   {`{"a":{"dtype":"BF16","shape":[2],"data_offsets":[0,4]}}`, 4, "dtype"},
		"rank":    {`{"a":{"dtype":"F32","shape":[1,1,1,1,1,1,1,1,1],"data_offsets":[0,4]}}`, 4, "shape"},
		"offsets": {`{"a":{"dtype":"F32","shape":[1],"data_offsets":[0]}}`, 4, "offsets"},
	} {
		b := ckptRaw(tc.header, make([]byte, tc.data))
		_, _, err := readSafetensors(bytes.NewReader(b), int64(len(b)))
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: %v", name, err)
		}
	}
}
