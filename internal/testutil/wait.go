package testutil

import (
	"testing"
	"time"
)

// WaitUntil polls cond every 10 ms and fails the test if it does not hold
// within timeout; what names the awaited state in the failure.
func WaitUntil(t testing.TB, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %s waiting for %s", timeout, what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}
