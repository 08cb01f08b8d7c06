//go:build cuda

package gpu_test

import (
	"bytes"
	"fmt"
	"strings"
	"testing"

	_ "github.com/kspaced/kspaced/fft" // each registers its kernel source
	"github.com/kspaced/kspaced/internal/gpu"
	"github.com/kspaced/kspaced/internal/gpu/gputest"
	_ "github.com/kspaced/kspaced/mri"
	_ "github.com/kspaced/kspaced/priors/nn"
)

// TestNVRTCCompilesAll compiles every kernel source the packages register
// with the real NVRTC library (no GPU needed) for Ampere (sm_80) and Hopper
// (sm_90), to PTX and to SASS, and fails on any error or warning. It skips
// when NVRTC is not installed (see docs/gpu.md), unless
// KSPACED_REQUIRE_GPU=1.
func TestNVRTCCompilesAll(t *testing.T) {
	major, minor, err := gpu.NVRTCVersion()
	if err != nil {
		if gputest.RequireGPU() {
			t.Fatal(err)
		}
		t.Skipf("NVRTC not available: %v", err)
	}
	archs, err := gpu.NVRTCArchs()
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("NVRTC %d.%d (%s), SASS for %v", major, minor, gpu.LibraryPath("nvrtc"), archs)
	srcs := gpu.Sources()
	names := map[string]bool{}
	for _, s := range srcs {
		names[s.Name] = true
	}
	for _, want := range []string{"nn", "fft", "mri"} {
		if !names[want] {
			t.Errorf("kernel source %q not registered", want)
		}
	}
	for _, s := range srcs {
		if def := fmt.Sprintf("#define BLOCK %d\n", gpu.Block); strings.Contains(s.Code, "BLOCK") && !strings.Contains(s.Code, def) {
			t.Errorf("%s: uses BLOCK without defining it as gpu.Block (256)", s.Name)
		}
		for _, arch := range []int{80, 90} {
			for _, cubin := range []bool{false, true} {
				img, log, err := gpu.NVRTCCompile(s.Name, s.Code, arch, cubin)
				if err != nil {
					t.Errorf("%s for sm_%d (cubin %v): %v", s.Name, arch, cubin, err)
					continue
				}
				if log != "" {
					t.Errorf("%s for sm_%d (cubin %v): compiler messages:\n%s", s.Name, arch, cubin, log)
				}
				decls, err := gpu.ParseKernels(s.Code)
				if err != nil {
					t.Fatal(err)
				}
				for _, d := range decls {
					// extern "C" keeps the names unmangled in PTX and SASS.
					if !bytes.Contains(img, []byte(d.Name)) {
						t.Errorf("%s sm_%d: kernel %s missing from the image", s.Name, arch, d.Name)
					}
				}
				if !cubin && !bytes.Contains(img, []byte(".target sm_")) {
					t.Errorf("%s sm_%d: output is not PTX", s.Name, arch)
				}
			}
		}
	}
}

// TestNVRTCReportsWarnings makes sure the warning check above can fail:
// NVRTC's log for a source with an unused variable is not empty.
func TestNVRTCReportsWarnings(t *testing.T) {
	if _, _, err := gpu.NVRTCVersion(); err != nil {
		t.Skipf("NVRTC not available: %v", err)
	}
	src := `extern "C" __global__ void k(float* y) { int unused = 3; y[0] = 1.0f; }`
	_, log, err := gpu.NVRTCCompile("warn", src, 80, false)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(log, "unused") && !strings.Contains(log, "never referenced") {
		t.Fatalf("no warning in NVRTC's log: %q", log)
	}
	if _, _, err := gpu.NVRTCCompile("bad", `extern "C" __global__ void k(float* y) { y[0] = undefined; }`, 90, true); err == nil {
		t.Fatal("NVRTC accepted an undefined identifier")
	}
}

// BenchmarkNVRTCCompile times compiling each registered source to SASS
// for sm_90: the start-up cost of a CUDA context (once per source and
// context; Context.Compile caches).
func BenchmarkNVRTCCompile(b *testing.B) {
	if _, _, err := gpu.NVRTCVersion(); err != nil {
		b.Skipf("NVRTC not available: %v", err)
	}
	for _, s := range gpu.Sources() {
		b.Run(s.Name, func(b *testing.B) {
			for b.Loop() {
				if _, _, err := gpu.NVRTCCompile(s.Name, s.Code, 90, true); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
