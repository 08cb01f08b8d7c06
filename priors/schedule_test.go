package priors

import (
	"math"
	"testing"
)

func TestSigmaSchedule(t *testing.T) {
	if s := Sigma(0); math.Abs(s-1e-3) > 1e-15 {
		t.Errorf("σ(0) = %g, want 1e-3", s)
	}
	if s := Sigma(1); math.Abs(s-1e2) > 1e-10 {
		t.Errorf("σ(1) = %g, want 1e2", s)
	}
	// Log-linear: σ(1/2) is the geometric mean of the ends.
	if s := Sigma(0.5); math.Abs(s-math.Sqrt(1e-3*1e2)) > 1e-12 {
		t.Errorf("σ(1/2) = %g, want %g", s, math.Sqrt(1e-1))
	}
}
