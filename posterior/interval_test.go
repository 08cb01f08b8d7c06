package posterior

import (
	"math"
	"math/rand/v2"
	"testing"
)

// With n exact draws from a Gaussian (as from a Gaussian prior's exact
// posterior) and the truth drawn from the same Gaussian, mean ± k·std with
// k = IntervalWidth(n, level) holds the truth with probability level, by
// Monte Carlo over many trials; the normal 1.645 falls short for few samples.
func TestIntervalWidthCoverage(t *testing.T) {
	if k := IntervalWidth(1<<20, 0.90); math.Abs(k-1.6449) > 1e-3 {
		t.Errorf("many samples: k = %.4f, want the normal 1.645", k)
	}
	if !math.IsInf(IntervalWidth(1, 0.9), 1) {
		t.Error("one sample: want +Inf")
	}
	rng := rand.New(rand.NewPCG(50, 50))
	const trials = 200000
	for _, tc := range []struct {
		n     int
		level float64
	}{{8, 0.90}, {4, 0.90}, {16, 0.90}, {8, 0.95}} {
		k := IntervalWidth(tc.n, tc.level)
		var in, inNormal int
		x := make([]float64, tc.n)
		for range trials {
			mu, sd := 3*rng.NormFloat64(), math.Exp(rng.NormFloat64())
			var m float64
			for i := range x {
				x[i] = mu + sd*rng.NormFloat64()
				m += x[i]
			}
			m /= float64(tc.n)
			var v float64
			for _, xi := range x {
				v += (xi - m) * (xi - m)
			}
			s := math.Sqrt(v / float64(tc.n-1))
			truth := mu + sd*rng.NormFloat64()
			if math.Abs(truth-m) <= k*s {
				in++
			}
			if math.Abs(truth-m) <= 1.645*s {
				inNormal++
			}
		}
		got := float64(in) / trials
		se := math.Sqrt(tc.level * (1 - tc.level) / trials)
		t.Logf("n = %d, level %.2f: k = %.4f, coverage %.4f ± %.4f (±1.645·std: %.4f)", tc.n, tc.level, k, got, se, float64(inNormal)/trials)
		if math.Abs(got-tc.level) > 4*se {
			t.Errorf("n = %d: mean ± %.3f·std holds the truth %.4f of the time, want %.2f", tc.n, k, got, tc.level)
		}
	}
}
