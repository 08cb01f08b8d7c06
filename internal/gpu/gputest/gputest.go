//go:build cuda

// Package gputest gives tests a gpu.Context: the real GPU when there is
// one, and the CPU emulator.
package gputest

import (
	"errors"
	"os"
	"os/exec"
	"testing"

	"github.com/kspaced/kspaced/internal/gpu"
)

// RequireGPU reports whether KSPACED_REQUIRE_GPU=1 asks tests that need a
// GPU to fail instead of skipping (set it on GPU machines so that a broken
// driver cannot pass as "skipped").
func RequireGPU() bool { return os.Getenv("KSPACED_REQUIRE_GPU") == "1" }

// Device opens GPU 0 for the test, or skips it (fails under
// KSPACED_REQUIRE_GPU=1) with the reason when there is none.
func Device(t testing.TB) *gpu.Context {
	t.Helper()
	c, err := gpu.Open(0)
	if err != nil {
		if RequireGPU() || !errors.Is(err, gpu.ErrNoGPU) {
			t.Fatalf("open GPU: %v", err)
		}
		t.Skipf("no GPU, test not run: %v", err)
	}
	t.Cleanup(func() {
		if err := c.Close(); err != nil {
			t.Errorf("close GPU context: %v", err)
		}
	})
	t.Logf("device: %v", c.Info())
	return c
}

// Emulator opens the CPU emulator, or skips the test when no host C++
// compiler is installed.
func Emulator(t testing.TB, reverse bool) *gpu.Context {
	t.Helper()
	if _, err := exec.LookPath("g++"); err != nil && os.Getenv("CXX") == "" {
		t.Skip("no g++ for the CUDA emulator")
	}
	c, err := gpu.OpenEmulator(gpu.EmulatorOptions{Reverse: reverse})
	if err != nil {
		t.Fatalf("open emulator: %v", err)
	}
	t.Cleanup(func() {
		if err := c.Close(); err != nil {
			t.Errorf("close emulator: %v", err)
		}
	})
	return c
}

// Each runs f as subtest "emulator" (threads in order), "emulator-reverse"
// (threads of each block in reverse order, which changes the result of a
// kernel missing a barrier) and "gpu".
func Each(t *testing.T, f func(t *testing.T, c *gpu.Context)) {
	t.Run("emulator", func(t *testing.T) { f(t, Emulator(t, false)) })
	t.Run("emulator-reverse", func(t *testing.T) { f(t, Emulator(t, true)) })
	t.Run("gpu", func(t *testing.T) { f(t, Device(t)) })
}

// Both runs f as subtests "emulator" and "gpu", for tests too slow to
// emulate twice; the kernels' thread-order independence is checked by the
// op-level tests that use Each.
func Both(t *testing.T, f func(t *testing.T, c *gpu.Context)) {
	t.Run("emulator", func(t *testing.T) { f(t, Emulator(t, false)) })
	t.Run("gpu", func(t *testing.T) { f(t, Device(t)) })
}
