package qc

import (
	"fmt"
	"math"

	"gonum.org/v1/gonum/stat/distuv"
)

// Dist is a log-normal fit of a positive measure over calibration scans:
// the mean and standard deviation of ln(value), the mean optionally linear
// in ln(acceleration) (Slope; the residual of a fitted reconstruction grows
// as the data per unknown shrink). At gives the fit at one acceleration.
type Dist struct {
	N     int     `json:"n"`
	Mean  float64 `json:"mean_log"`
	SD    float64 `json:"sd_log"`
	Slope float64 `json:"slope_log_acceleration,omitempty"`
}

// FitDistVs fits ln(value) = Mean + Slope·ln(acc) by least squares, SD
// from the residuals (n − 2 degrees of freedom); it needs at least 4 values
// and two distinct accelerations.
func FitDistVs(values, acc []float64) (Dist, error) {
	if len(values) != len(acc) || len(values) < 4 {
		return Dist{}, fmt.Errorf("fit: %d values and %d accelerations, need at least 4 of each", len(values), len(acc))
	}
	var sx, sy, sxx, sxy float64
	n := float64(len(values))
	for i, v := range values {
		if !(v > 0) || math.IsInf(v, 0) || !(acc[i] > 0) {
			return Dist{}, fmt.Errorf("fit: value %v at acceleration %v", v, acc[i])
		}
		x, y := math.Log(acc[i]), math.Log(v)
		sx, sy, sxx, sxy = sx+x, sy+y, sxx+x*x, sxy+x*y
	}
	den := n*sxx - sx*sx
	if den <= 1e-12 {
		return Dist{}, fmt.Errorf("fit: one acceleration only")
	}
	slope := (n*sxy - sx*sy) / den
	mean := (sy - slope*sx) / n
	var ss float64
	for i, v := range values {
		r := math.Log(v) - mean - slope*math.Log(acc[i])
		ss += r * r
	}
	return Dist{N: len(values), Mean: mean, SD: math.Sqrt(ss / (n - 2)), Slope: slope}, nil
}

// At is the distribution at acceleration acc (≤ 0: ignore the slope).
func (d Dist) At(acc float64) Dist {
	if acc > 0 && d.Slope != 0 {
		d.Mean += d.Slope * math.Log(acc)
	}
	d.Slope = 0
	return d
}

// FitDist fits a Dist to positive values; it needs at least 3.
func FitDist(values []float64) (Dist, error) {
	if len(values) < 3 {
		return Dist{}, fmt.Errorf("fit: %d values, need at least 3", len(values))
	}
	var s, s2 float64
	for _, v := range values {
		if !(v > 0) || math.IsInf(v, 0) {
			return Dist{}, fmt.Errorf("fit: value %v is not finite and positive", v)
		}
		l := math.Log(v)
		s += l
		s2 += l * l
	}
	n := float64(len(values))
	mean := s / n
	sd := math.Sqrt(max(s2/n-mean*mean, 0) * n / (n - 1))
	return Dist{N: len(values), Mean: mean, SD: sd}, nil
}

// Median is exp(mean log): the typical value.
func (d Dist) Median() float64 { return math.Exp(d.Mean) }

// Upper is the value z standard deviations above the typical one (in logs).
func (d Dist) Upper(z float64) float64 { return math.Exp(d.Mean + z*d.SD) }

// Percentile is the share (0–100) of calibration scans expected below v.
func (d Dist) Percentile(v float64) float64 {
	if !(v > 0) {
		return 0
	}
	if d.SD == 0 {
		if math.Log(v) > d.Mean {
			return 100
		}
		return 0
	}
	return 100 * distuv.UnitNormal.CDF((math.Log(v)-d.Mean)/d.SD)
}

// ChiSquareSurvival is P(χ²(2m)/(2m) ≥ ratio): the chance that the residual
// of a fixed image over m complex samples of pure noise of the declared
// level is at least ratio times its expected value.
func ChiSquareSurvival(ratio float64, m int) float64 {
	if m < 1 {
		return math.NaN()
	}
	k := 2 * float64(m)
	return distuv.ChiSquared{K: k}.Survival(ratio * k)
}

// ChiSquareUpper is the ratio that pure noise exceeds with probability p.
func ChiSquareUpper(p float64, m int) float64 {
	k := 2 * float64(m)
	return distuv.ChiSquared{K: k}.Quantile(1-p) / k
}
