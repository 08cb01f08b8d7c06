package lab

import (
	"context"
	"math"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/kspaced/kspaced/configs"
	"github.com/kspaced/kspaced/mri/kspaceio"
	"github.com/kspaced/kspaced/pipeline"
)

// TestSliceBatchSpeed reconstructs one multi-slice k-space file
// (KSPACED_SLICEBATCH_SCAN, e.g. `kspaced simulate --slices 4`) with mmps
// and the built-in prior twice in one process, one slice per denoiser batch
// and then all slices in one (recon.sampler.batch_pixels), and logs wall and
// CPU seconds of each and the largest difference of the means (minutes;
// docs/bench/sampling.md). KSPACED_SLICEBATCH=1 runs it.
func TestSliceBatchSpeed(t *testing.T) {
	if os.Getenv("KSPACED_SLICEBATCH") != "1" {
		t.Skip("set KSPACED_SLICEBATCH=1 and KSPACED_SLICEBATCH_SCAN (minutes)")
	}
	scan := os.Getenv("KSPACED_SLICEBATCH_SCAN")
	cfg := configs.Default()
	cfg.Recon.Method = "mmps"
	cfg.Output.NPY, cfg.Output.DICOM, cfg.Output.Previews = true, false, false
	var means [][]complex64
	for _, pixels := range []int{1, 1 << 28} {
		cfg.Recon.Sampler.BatchPixels = pixels
		out := filepath.Join(t.TempDir(), "out")
		if err := os.Mkdir(out, 0o755); err != nil {
			t.Fatal(err)
		}
		c0, w0 := cpuSeconds(), time.Now()
		rep, err := pipeline.Run(context.Background(), pipeline.Job{ID: "v", Inputs: []string{scan}, Config: cfg}, out, nil)
		if err != nil {
			t.Fatal(err)
		}
		wall, cpu := time.Since(w0).Seconds(), cpuSeconds()-c0
		a, err := kspaceio.ReadNPY(rep.Outputs[0])
		if err != nil {
			t.Fatal(err)
		}
		means = append(means, a.Data)
		t.Logf("batch_pixels %d: %d slices, %.1f s wall, %.1f CPU s, sampling %.1f s", pixels, rep.Slices, wall, cpu, rep.Seconds["sampling"])
	}
	var peak, diff float64
	for i, v := range means[0] {
		peak = max(peak, math.Hypot(float64(real(v)), float64(imag(v))))
		d := v - means[1][i]
		diff = max(diff, math.Hypot(float64(real(d)), float64(imag(d))))
	}
	t.Logf("largest |mean difference| %.3g (peak %.3g)", diff, peak)
	if diff > 1e-3*peak {
		t.Errorf("batched slices differ from one at a time by %.3g (peak %.3g)", diff, peak)
	}
}
