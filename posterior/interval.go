package posterior

import (
	"math"

	"gonum.org/v1/gonum/stat/distuv"
)

// IntervalWidth is the k for which mean ± k·std of n samples is a central
// interval that holds a new draw (the true image) with probability level,
// when the samples and the truth come from the same Gaussian: mean and std
// are estimates, so k is Student's t quantile with n − 1 degrees of freedom
// times √(1 + 1/n), not the normal 1.645 (its limit at 0.90). With 8
// samples the 90 % interval is ±2.01·std (±1.645·std holds only 0.835).
// n < 2 gives +Inf: one sample has no spread.
func IntervalWidth(n int, level float64) float64 {
	if n < 2 {
		return math.Inf(1)
	}
	t := distuv.StudentsT{Mu: 0, Sigma: 1, Nu: float64(n - 1)}
	return t.Quantile(0.5+level/2) * math.Sqrt(1+1/float64(n))
}
