package priors

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"math"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/kspaced/kspaced/internal/testutil"
)

func gaussMeta() GaussianMeta {
	return GaussianMeta{
		Normalisation: Normalisation{Scheme: "per-scan test scheme", Scale: 1},
		Provenance:    Provenance{Data: "unit test", Images: 5, EMLap: 0, Seed: 9},
	}
}

func emTinyNet() UNetConfig {
	return UNetConfig{Channels: 2, Rows: 16, Cols: 16, Widths: []int{8, 16}, Blocks: 1,
		EmbedDim: 16, EmbedMaxPeriod: 1000, Unshuffle: 1, Groups: 4, Heads: 1}
}

func randomInput(n int, seed uint64) []float32 {
	r := rand.New(rand.NewPCG(seed, 77))
	x := make([]float32, n)
	for i := range x {
		x[i] = float32(r.NormFloat64())
	}
	return x
}

func TestLoadPriorGaussianRoundTrip(t *testing.T) {
	g := gaussRandom(t, rand.New(rand.NewPCG(1, 1)), 4, 5, 3, 0)
	path := filepath.Join(t.TempDir(), "g.safetensors")
	if err := SaveGaussian(path, g, gaussMeta()); err != nil {
		t.Fatal(err)
	}
	d, info, err := LoadPrior(path)
	if err != nil {
		t.Fatal(err)
	}
	if info.Kind != KindGaussian || info.Rank != 3 || info.Channels != 2 || info.Rows != 4 || info.Cols != 5 ||
		info.Name != "g.safetensors" || info.Normalisation != gaussMeta().Normalisation || info.Provenance.Seed != 9 ||
		info.Provenance.Data != "unit test" || info.Provenance.CodeVersion == "" || info.Architecture != nil {
		t.Fatalf("info %+v", info)
	}
	x := randomInput(2*g.n, 3)
	sig := []float32{0.3, 2}
	want, got := make([]float32, len(x)), make([]float32, len(x))
	if err := g.Denoise(want, x, sig); err != nil {
		t.Fatal(err)
	}
	if err := d.Denoise(got, x, sig); err != nil {
		t.Fatal(err)
	}
	for i := range want {
		if want[i] != got[i] {
			t.Fatalf("denoised value %d: %g after the round trip, %g before", i, got[i], want[i])
		}
	}
	if _, _, err := LoadUNet(path); err == nil {
		t.Error("LoadUNet accepted a Gaussian checkpoint")
	}
}

func TestLoadPriorUNet(t *testing.T) {
	u, err := NewUNet(emTinyNet(), 5)
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "u.safetensors")
	meta := CheckpointMeta{Normalisation: Normalisation{Scheme: "s"}, Provenance: Provenance{EMLap: 3, Steps: 11}}
	if err := u.Save(path, meta); err != nil {
		t.Fatal(err)
	}
	d, info, err := LoadPrior(path)
	if err != nil {
		t.Fatal(err)
	}
	if info.Kind != KindUNet || info.Architecture == nil || info.Rows != 16 || info.Provenance.EMLap != 3 || info.Provenance.Steps != 11 {
		t.Fatalf("info %+v", info)
	}
	x := randomInput(2*16*16, 4)
	want, got := make([]float32, len(x)), make([]float32, len(x))
	if err := u.Denoise(want, x, []float32{0.5}); err != nil {
		t.Fatal(err)
	}
	if err := d.Denoise(got, x, []float32{0.5}); err != nil {
		t.Fatal(err)
	}
	for i := range want {
		if want[i] != got[i] {
			t.Fatalf("denoised value %d: %g from LoadPrior, %g from the network", i, got[i], want[i])
		}
	}
}

// TestGaussianCheckpointPython has numpy read the file with a minimal
// safetensors parser and compute the Gaussian denoiser densely,
// μ + Σ(Σ + σ²I)⁻¹(x − μ) with Σ = diag(d) + UUᵀ, which must agree with
// the loaded prior's Woodbury implementation.
func TestGaussianCheckpointPython(t *testing.T) {
	py := testutil.PythonWith(t, "numpy")
	g := gaussRandom(t, rand.New(rand.NewPCG(2, 2)), 4, 5, 3, 0)
	dir := t.TempDir()
	path := filepath.Join(dir, "g.safetensors")
	if err := SaveGaussian(path, g, gaussMeta()); err != nil {
		t.Fatal(err)
	}
	x := randomInput(g.n, 5)
	xb, _ := json.Marshal(x)
	script := `
import json, struct, sys
import numpy as np
raw = open(sys.argv[1], "rb").read()
(n,) = struct.unpack("<Q", raw[:8])
h = json.loads(raw[8:8 + n]); meta = h.pop("__metadata__"); data = raw[8 + n:]
t = {k: np.frombuffer(data[e["data_offsets"][0]:e["data_offsets"][1]], dtype="<f4").reshape(e["shape"]).astype(np.float64) for k, e in h.items()}
assert meta["format"] == "kspaced-gaussian/1" and meta["image_size"] == "2x4x5" and meta["rank"] == "3", meta
mu, d, u = t["mean"].ravel(), t["diag"].ravel(), t["factor"]
S = np.diag(d) + u @ u.T
x = np.array(json.loads(sys.argv[2]), dtype=np.float64)
s2 = 0.7 ** 2
out = mu + S @ np.linalg.solve(S + s2 * np.eye(len(mu)), x - mu)
json.dump(out.tolist(), sys.stdout)
`
	out, err := exec.Command(py, "-c", script, path, string(xb)).CombinedOutput()
	if err != nil {
		t.Fatalf("python: %v\n%s", err, out)
	}
	var want []float64
	if err := json.Unmarshal(out, &want); err != nil {
		t.Fatalf("python output %q: %v", out, err)
	}
	d, _, err := LoadPrior(path)
	if err != nil {
		t.Fatal(err)
	}
	got := make([]float32, g.n)
	if err := d.Denoise(got, x, []float32{0.7}); err != nil {
		t.Fatal(err)
	}
	for i := range got {
		if math.Abs(float64(got[i])-want[i]) > 1e-5*(1+math.Abs(want[i])) {
			t.Fatalf("value %d: Go %g, numpy %g", i, got[i], want[i])
		}
	}
}

// rawSafetensors writes tensors and metadata as they are, for hostile files.
func rawSafetensors(t *testing.T, path string, ts []ckptTensor, md map[string]string) {
	t.Helper()
	var b bytes.Buffer
	if err := writeSafetensors(&b, ts, md); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, b.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
}

func TestLoadPriorRejectsBadFiles(t *testing.T) {
	dir := t.TempDir()
	good := func() ([]ckptTensor, map[string]string) {
		return []ckptTensor{
				{name: "mean", shape: []int{2, 2, 2}, data: make([]float32, 8)},
				{name: "diag", shape: []int{2, 2, 2}, data: []float32{1, 1, 1, 1, 1, 1, 1, 1}},
				{name: "factor", shape: []int{8, 1}, data: make([]float32, 8)},
			}, map[string]string{"format": GaussianFormat, "image_size": "2x2x2", "rank": "1",
				"normalisation": `{"scheme":"s"}`, "provenance": `{"data":"","data_hash":"","images":0,"steps":0,"em_lap":0,"code_version":"","seed":0}`}
	}
	ts, md := good()
	p := filepath.Join(dir, "good.safetensors")
	rawSafetensors(t, p, ts, md)
	if _, _, err := LoadPrior(p); err != nil {
		t.Fatalf("well-formed file refused: %v", err)
	}
	cases := map[string]func(ts []ckptTensor, md map[string]string) []ckptTensor{
		"format":        func(ts []ckptTensor, md map[string]string) []ckptTensor { md["format"] = "other/1"; return ts },
		"no format":     func(ts []ckptTensor, md map[string]string) []ckptTensor { delete(md, "format"); return ts },
		"huge size":     func(ts []ckptTensor, md map[string]string) []ckptTensor { md["image_size"] = "64x4096x4096"; return ts },
		"size mismatch": func(ts []ckptTensor, md map[string]string) []ckptTensor { md["image_size"] = "2x2x3"; return ts },
		"bad size":      func(ts []ckptTensor, md map[string]string) []ckptTensor { md["image_size"] = "two"; return ts },
		"rank":          func(ts []ckptTensor, md map[string]string) []ckptTensor { md["rank"] = "2"; return ts },
		"negative rank": func(ts []ckptTensor, md map[string]string) []ckptTensor { md["rank"] = "-1"; return ts },
		"missing":       func(ts []ckptTensor, md map[string]string) []ckptTensor { return ts[:2] },
		"extra": func(ts []ckptTensor, md map[string]string) []ckptTensor {
			return append(ts, ckptTensor{name: "x", shape: []int{1}, data: []float32{0}})
		},
		"negative diagonal": func(ts []ckptTensor, md map[string]string) []ckptTensor { ts[1].data[3] = -1; return ts },
		"nan mean": func(ts []ckptTensor, md map[string]string) []ckptTensor {
			ts[0].data[0] = float32(math.NaN())
			return ts
		},
		"metadata": func(ts []ckptTensor, md map[string]string) []ckptTensor { md["provenance"] = `{"nope":1}`; return ts },
	}
	for name, mutate := range cases {
		ts, md := good()
		ts = mutate(ts, md)
		p := filepath.Join(dir, strings.ReplaceAll(name, " ", "_")+".safetensors")
		rawSafetensors(t, p, ts, md)
		if _, _, err := LoadPrior(p); err == nil {
			t.Errorf("%s: accepted", name)
		} else if !strings.Contains(err.Error(), p) {
			t.Errorf("%s: error %q does not name the file", name, err)
		}
	}
	// Truncations of a good file never panic and always fail.
	raw, err := os.ReadFile(filepath.Join(dir, "good.safetensors"))
	if err != nil {
		t.Fatal(err)
	}
	for _, cut := range []int{0, 4, 8, 20, len(raw) / 2, len(raw) - 1} {
		p := filepath.Join(dir, "cut.safetensors")
		if err := os.WriteFile(p, raw[:cut], 0o644); err != nil {
			t.Fatal(err)
		}
		if _, _, err := LoadPrior(p); err == nil {
			t.Errorf("file cut to %d bytes accepted", cut)
		}
	}
	// A header claiming more than the file holds.
	bad := append([]byte(nil), raw...)
	binary.LittleEndian.PutUint64(bad, 1<<40)
	p = filepath.Join(dir, "claim.safetensors")
	if err := os.WriteFile(p, bad, 0o644); err != nil {
		t.Fatal(err)
	}
	if _, _, err := LoadPrior(p); err == nil {
		t.Error("impossible header length accepted")
	}
	if _, _, err := LoadPrior(filepath.Join(dir, "missing.safetensors")); err == nil {
		t.Error("missing file accepted")
	}
}
