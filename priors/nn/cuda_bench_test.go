//go:build cuda

package nn

import (
	"fmt"
	"math"
	"strings"
	"testing"

	"github.com/kspaced/kspaced/internal/gpu/gputest"
)

// BenchmarkCUDAEngine logs GEMM and convolution TFLOP/s on the GPU next to
// cuBLAS's own sgemm (run with -benchtime 1x; it skips without a GPU).
func BenchmarkCUDAEngine(b *testing.B) {
	ctx := gputest.Device(b)
	for b.Loop() {
		var sb strings.Builder
		if err := BenchCUDAEngine(&sb, ctx); err != nil {
			b.Fatal(err)
		}
		b.Log("\n" + sb.String())
	}
}

// BenchmarkCUDAConv reports the 64→64 3×3 convolution's figures as metrics.
func BenchmarkCUDAConv(b *testing.B) {
	ctx := gputest.Device(b)
	g := ConvGeom{N: 8, Cin: 64, H: 64, W: 64, Cout: 64, K: 3, Pad: 1}
	for _, tf32 := range []bool{false, true} {
		b.Run(fmt.Sprintf("tf32=%v", tf32), func(b *testing.B) {
			var r CUDAConvBench
			var err error
			for b.Loop() {
				if r, err = BenchCUDAConv(ctx, g, tf32, 5, 8192); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(r.Peak, "peak-TFLOP/s")
			b.ReportMetric(r.Forward, "fwd-TFLOP/s")
			b.ReportMetric(r.Backward, "bwd-TFLOP/s")
			b.ReportMetric(r.BackwardData, "vjp-TFLOP/s")
		})
	}
}

// TestBenchCUDAConvRuns runs the benchmark code once on the emulator with
// tiny sizes, so that it cannot rot unnoticed between GPU runs.
func TestBenchCUDAConvRuns(t *testing.T) {
	ctx := gputest.Emulator(t, false)
	r, err := BenchCUDAConv(ctx, ConvGeom{N: 2, Cin: 3, H: 5, W: 4, Cout: 2, K: 3, Pad: 1}, true, 1, 16)
	if err != nil {
		t.Fatal(err)
	}
	for _, v := range []float64{r.Peak, r.Gemm, r.Forward, r.Backward, r.BackwardData} {
		if !(v > 0) || math.IsInf(v, 0) {
			t.Fatalf("figures %+v", r)
		}
	}
}
