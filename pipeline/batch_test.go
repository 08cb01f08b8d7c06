package pipeline

import (
	"context"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"testing"

	"github.com/kspaced/kspaced/configs"
	"github.com/kspaced/kspaced/mri/kspaceio"
	"github.com/kspaced/kspaced/mri/simulate"
	"github.com/kspaced/kspaced/priors"
)

// The slices of a volume sampled as one batch give the mean and std that
// sampling them one at a time gives (each slice keeps its own random
// stream), up to the engine's float rounding in larger GEMMs.
func TestRunSlicesInOneBatchEqualsOneAtATime(t *testing.T) {
	dir := t.TempDir()
	const n, coils = 48, 4
	mask := make([]float32, n*n)
	for r := range n {
		for c := range n {
			if c%2 == 0 || (c >= n/2-5 && c < n/2+5) {
				mask[r*n+c] = 1
			}
		}
	}
	var k []complex64
	for sl := range 3 { // three different slices: the phantom at three intensities, own noise
		img := make([]complex64, n*n)
		for i, v := range simulate.SheppLogan(n) {
			img[i] = complex(v*float32(1+sl), 0)
		}
		scan, err := simulate.KSpace(img, simulate.CoilMaps(coils, n, n), coils, n, n, mask, 0.01, rand.New(rand.NewPCG(1, uint64(sl))))
		if err != nil {
			t.Fatal(err)
		}
		k = append(k, scan.KSpace...)
	}
	in := filepath.Join(dir, "vol.npy")
	if err := kspaceio.WriteNPYComplex64(in, []int{3, coils, n, n}, k); err != nil {
		t.Fatal(err)
	}
	if err := kspaceio.WriteNPYFloat32(filepath.Join(dir, "vol_mask.npy"), []int{n, n}, mask); err != nil {
		t.Fatal(err)
	}
	cfg := configs.Default()
	net, err := priors.NewUNet(priors.UNetConfig{Channels: 2, Rows: n, Cols: n, Widths: []int{8, 16}, Blocks: 1,
		Attention: []int{1}, Heads: 1, EmbedDim: 8, EmbedMaxPeriod: 1000, Unshuffle: 1, Groups: 4}, 1)
	if err != nil {
		t.Fatal(err)
	}
	head, err := priors.NewCovHead("head-narrow", 2, n, n, 2)
	if err != nil {
		t.Fatal(err)
	}
	if err := net.SetCovariance(head); err != nil {
		t.Fatal(err)
	}
	ckpt := filepath.Join(dir, "prior.safetensors")
	if err := net.Save(ckpt, priors.CheckpointMeta{Architecture: net.Config(),
		Normalisation: priors.Normalisation{Scheme: NormalisationScheme}}); err != nil {
		t.Fatal(err)
	}
	cfg.Recon.Method = "mmps"
	cfg.Recon.Sampler.Prior = ckpt
	cfg.Recon.Sampler.Steps, cfg.Recon.Sampler.Samples = 4, 2
	cfg.Recon.CoilMaps.Calib, cfg.Recon.CoilMaps.Kernel = 10, 4
	cfg.Output.NPY, cfg.Output.DICOM, cfg.Output.Previews = true, false, false
	run := func(pixels int) (mean, std *kspaceio.NPY, rep *Report, ticks int) {
		cfg.Recon.Sampler.BatchPixels = pixels
		out := filepath.Join(dir, "out", filepath.Base(t.Name())+string(rune('a'+pixels%26)))
		if err := os.MkdirAll(out, 0o755); err != nil {
			t.Fatal(err)
		}
		rep, err := Run(context.Background(), Job{ID: "v", Inputs: []string{in}, Config: cfg}, out, func(done, total int) {
			if done > total || total != 3*4 {
				t.Errorf("progress %d of %d", done, total)
			}
			ticks++
		})
		if err != nil {
			t.Fatal(err)
		}
		if rep.Slices != 3 || ticks == 0 {
			t.Fatalf("%d slices, %d progress calls", rep.Slices, ticks)
		}
		mean, err = kspaceio.ReadNPY(filepath.Join(out, "vol.npy"))
		if err != nil {
			t.Fatal(err)
		}
		std, err = kspaceio.ReadNPY(filepath.Join(out, "vol_std.npy"))
		if err != nil {
			t.Fatal(err)
		}
		return mean, std, rep, ticks
	}
	if b := sliceBatch(&cfg.Recon, &prior{}, n, n); b != cfg.Recon.Sampler.BatchPixels/(2*n*n) {
		t.Fatalf("slice batch %d", b)
	}
	m1, s1, r1, t1 := run(1) // one slice per batch
	m3, s3, r3, t3 := run(3 * 2 * n * n)
	if t1 != 12 || t3 != 4 { // a progress call per sampler step
		t.Fatalf("%d sampler steps one slice at a time, %d batched; want 12 and 4", t1, t3)
	}
	if len(m1.Data) != 3*n*n || len(m3.Data) != len(m1.Data) {
		t.Fatalf("mean shapes %v and %v", m1.Shape, m3.Shape)
	}
	var peak, worst, worstStd float64
	for i := range m1.Data {
		peak = max(peak, cabs(m1.Data[i]))
		worst = max(worst, cabs(m3.Data[i]-m1.Data[i]))
		worstStd = max(worstStd, math.Abs(float64(real(s3.Data[i])-real(s1.Data[i]))))
	}
	t.Logf("largest difference, batched against one slice at a time: mean %.2e, std %.2e (peak %.3g)", worst, worstStd, peak)
	if worst > 1e-4*peak || worstStd > 1e-4*peak {
		t.Errorf("batched slices differ from one at a time: mean by %.2e, std by %.2e (peak %.3g)", worst, worstStd, peak)
	}
	for i := range r1.Residual {
		if math.Abs(r1.Residual[i]-r3.Residual[i]) > 1e-4 {
			t.Errorf("slice %d: residual %v batched, %v alone", i, r3.Residual[i], r1.Residual[i])
		}
	}
	// The slices differ, so equal outputs are not one slice's result thrice.
	var diff float64
	for i := range n * n {
		diff = max(diff, cabs(m3.Data[i]-m3.Data[2*n*n+i]))
	}
	if diff < 1e-3*peak {
		t.Error("slices 0 and 2 have the same mean")
	}
}
