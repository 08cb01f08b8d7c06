//go:build cuda

package device

import (
	"errors"
	"math"
	"math/rand/v2"
	"strings"
	"testing"

	"github.com/kspaced/kspaced/internal/gpu"
	"github.com/kspaced/kspaced/internal/gpu/gputest"
	"github.com/kspaced/kspaced/priors"
)

func TestOpenCUDABuild(t *testing.T) {
	if !CUDABuild {
		t.Fatal("cudaBuild false in the CUDA build")
	}
	d, err := Open("cpu")
	if err != nil || d.Name() != "cpu" {
		t.Fatalf("cpu: %v, %v", d, err)
	}
	if _, err := Open("tpu"); err == nil {
		t.Fatal("unknown device accepted")
	}
	d, err = Open("cuda")
	if err == nil {
		t.Logf("GPU present: %s", d.Info())
		d.Close()
		return
	}
	if gputest.RequireGPU() {
		t.Fatal(err)
	}
	if !errors.Is(err, gpu.ErrNoGPU) || !strings.Contains(err.Error(), "--device cpu") {
		t.Fatalf("no-GPU error does not explain itself: %v", err)
	}
	t.Logf("as expected without a GPU: %v", err)
}

// TestDeviceMovesUNet: on the emulated GPU the moved network (UNet.To)
// denoises like the CPU one, and Operator gives the device SENSE.
func TestDeviceMovesUNet(t *testing.T) {
	ctx := gputest.Emulator(t, false)
	saved := openGPU
	openGPU = func() (*gpu.Context, error) { return ctx, nil }
	defer func() { openGPU = saved }()
	d, err := Open("cuda")
	if err != nil {
		t.Fatal(err)
	}
	cfg := priors.UNetConfig{Channels: 2, Rows: 8, Cols: 8, Widths: []int{8, 16}, Blocks: 1, Heads: 1,
		EmbedDim: 16, EmbedMaxPeriod: 1000, Unshuffle: 1, Groups: 4}
	cpuNet, err := priors.NewUNet(cfg, 3)
	if err != nil {
		t.Fatal(err)
	}
	g, err := cpuNet.To(d.Backend())
	if err != nil {
		t.Fatal(err)
	}
	r := rand.New(rand.NewPCG(1, 1))
	xt := make([]float32, 2*2*8*8)
	for i := range xt {
		xt[i] = float32(r.NormFloat64())
	}
	sigma := []float32{0.5, 2}
	want, got := make([]float32, len(xt)), make([]float32, len(xt))
	if err := cpuNet.Denoise(want, xt, sigma); err != nil {
		t.Fatal(err)
	}
	if err := g.Denoise(got, xt, sigma); err != nil {
		t.Fatal(err)
	}
	scale := 0.0
	for _, v := range want {
		scale = math.Max(scale, math.Abs(float64(v)))
	}
	for i := range got {
		if math.Abs(float64(got[i]-want[i])) > 1e-3*scale { // Open enables TF32
			t.Fatalf("moved U-Net: d[%d] = %g, CPU %g", i, got[i], want[i])
		}
	}
	maps := make([]complex64, 2*64)
	for i := range maps {
		maps[i] = 1
	}
	op, err := d.Operator(maps, 2, 8, 8, make([]float32, 64))
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := op.(interface{ ForwardDevice(dst, src gpu.Ptr) error }); !ok {
		t.Fatalf("operator on the GPU is %T", op)
	}
	if err := d.Release(op); err != nil {
		t.Fatal(err)
	}
	if _, err := d.Operator(maps, 3, 8, 8, make([]float32, 64)); err == nil {
		t.Fatal("bad operator shapes accepted")
	}
	if err := d.Err(); err != nil {
		t.Fatal(err)
	}
	if err := d.hw.cuda.Close(); err != nil { // the context belongs to the test
		t.Fatal(err)
	}
}
