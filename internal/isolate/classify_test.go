package isolate

import (
	"errors"
	"os/exec"
	"testing"
	"time"
)

// A child that aborts because a new thread's stack could not be mapped
// under its address-space limit ran out of memory; it did not crash.
func TestThreadStackFailureIsMemory(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct{ stderr, want string }{
		{"runtime/cgo: pthread_create failed: Resource temporarily unavailable\nSIGABRT: abort\n", OutcomeMemory},
		{"runtime: failed to create new OS thread (have 7 already; errno=11)\nfatal error: newosproc\n", OutcomeMemory},
		{"some C library message\n", OutcomeCrash},
	} {
		cmd := exec.Command("sh", "-c", "kill -ABRT $$")
		werr := cmd.Run()
		var ee *exec.ExitError
		if !errors.As(werr, &ee) {
			t.Fatalf("sh: %v", werr)
		}
		var tail stderrHead
		tail.Write([]byte(tc.stderr))
		got, err := classify(werr, ee.ProcessState, &tail, Limits{Memory: 512 << 20, CPU: time.Minute})
		if got != tc.want || !errors.Is(err, ErrUnsafe) {
			t.Errorf("stderr %q: outcome %q (%v), want %q", tc.stderr, got, err, tc.want)
		}
	}
}
