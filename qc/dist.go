package qc

import (
	"fmt"
	"math"

	"gonum.org/v1/gonum/mat"
	"gonum.org/v1/gonum/stat/distuv"
)

// Dist is a log-normal fit of a positive measure over calibration scans:
// the mean and standard deviation of ln(value), the mean optionally linear
// in ln(acceleration) and ln(SNR) (the residual a fitted reconstruction
// leaves grows as the data per unknown shrink, and its model-error part
// grows with the signal over the noise). At gives the fit at one scan.
type Dist struct {
	N        int     `json:"n"`
	Mean     float64 `json:"mean_log"`
	SD       float64 `json:"sd_log"`
	Slope    float64 `json:"slope_log_acceleration,omitempty"`
	SlopeSNR float64 `json:"slope_log_snr,omitempty"`
}

// FitDistVs fits ln(value) = Mean + Slope·ln(acc) + SlopeSNR·ln(snr) by
// least squares, SD from the residuals (n − 3 degrees of freedom); it needs
// at least 5 values, spread in both covariates. snr nil fits acceleration
// only (n − 2).
func FitDistVs(values, acc, snr []float64) (Dist, error) {
	k := 3
	if snr == nil {
		k = 2
	}
	if len(values) != len(acc) || (snr != nil && len(snr) != len(values)) || len(values) < k+2 {
		return Dist{}, fmt.Errorf("fit: %d values, %d accelerations, %d SNRs; need at least %d of each", len(values), len(acc), len(snr), k+2)
	}
	x := mat.NewDense(len(values), k, nil)
	y := mat.NewVecDense(len(values), nil)
	for i, v := range values {
		if !(v > 0) || math.IsInf(v, 0) || !(acc[i] > 0) || (snr != nil && !(snr[i] > 0)) {
			return Dist{}, fmt.Errorf("fit: value %v at acceleration %v", v, acc[i])
		}
		x.Set(i, 0, 1)
		x.Set(i, 1, math.Log(acc[i]))
		if snr != nil {
			x.Set(i, 2, math.Log(snr[i]))
		}
		y.SetVec(i, math.Log(v))
	}
	var xtx mat.Dense
	xtx.Mul(x.T(), x)
	if mat.Cond(&xtx, 1) > 1e12 {
		return Dist{}, fmt.Errorf("fit: covariates do not vary (one acceleration or noise level only)")
	}
	var beta mat.VecDense
	if err := beta.SolveVec(x, y); err != nil {
		return Dist{}, fmt.Errorf("fit: %w", err)
	}
	var res mat.VecDense
	res.MulVec(x, &beta)
	res.SubVec(y, &res)
	ss := mat.Dot(&res, &res)
	d := Dist{N: len(values), Mean: beta.AtVec(0), Slope: beta.AtVec(1), SD: math.Sqrt(ss / float64(len(values)-k))}
	if snr != nil {
		d.SlopeSNR = beta.AtVec(2)
	}
	return d, nil
}

// At is the distribution at acceleration acc and SNR snr (a value ≤ 0
// leaves its slope out).
func (d Dist) At(acc, snr float64) Dist {
	if acc > 0 {
		d.Mean += d.Slope * math.Log(acc)
	}
	if snr > 0 {
		d.Mean += d.SlopeSNR * math.Log(snr)
	}
	d.Slope, d.SlopeSNR = 0, 0
	return d
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

// FitDist fits a Dist without covariates; it needs at least 3 values.
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
	return Dist{N: len(values), Mean: mean, SD: math.Sqrt(max(s2/n-mean*mean, 0) * n / (n - 1))}, nil
}
