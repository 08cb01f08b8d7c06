package testutil

import (
	"errors"
	"os"
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

// Names lists a folder's entries by name, sorted; a missing folder is empty.
func Names(t testing.TB, dir string) []string {
	t.Helper()
	des, err := os.ReadDir(dir) // sorted by name
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		t.Fatal(err)
	}
	var out []string
	for _, d := range des {
		out = append(out, d.Name())
	}
	return out
}
