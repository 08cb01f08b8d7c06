package qc

import (
	"math"
	"slices"
)

// EdgeSparsity measures how piecewise constant the object is. Tissue in a
// head image is textured everywhere (cortex, white matter, vessels), so
// its gradients are spread; a phantom is flat regions meeting at a few
// sharp edges, so most of its gradients are near zero and a few are large.
type EdgeSparsity struct {
	// Score is q90/q25 of the gradient magnitude (central differences) of
	// the magnitude image binned 2×2 (halving the noise), over the
	// interior foreground: binned pixels whose 3×3 neighbourhood is all at
	// least a fifth of the 99th-percentile magnitude; q25 is floored at
	// 0.1 % of their median level. Higher is more piecewise constant.
	Score float64 `json:"score"`
	// Pixels is the interior foreground size (binned pixels).
	Pixels     int     `json:"pixels"`
	Threshold  float64 `json:"threshold"`
	Percentile float64 `json:"percentile"`
}

// minEdgePixels is the interior foreground below which the quantiles mean little.
const minEdgePixels = 100

// measureEdgeSparsity scores img (rows×cols); nil when the image is too
// small or its foreground too thin.
func measureEdgeSparsity(img []complex64, rows, cols int) *EdgeSparsity {
	h, w := rows/2, cols/2
	if h < 3 || w < 3 {
		return nil
	}
	mag, cut := foregroundCut(img)
	b := make([]float64, h*w)
	for r := 0; r < h; r++ {
		for c := 0; c < w; c++ {
			i := 2*r*cols + 2*c
			b[r*w+c] = (mag[i] + mag[i+1] + mag[i+cols] + mag[i+cols+1]) / 4
		}
	}
	var g, fg []float64
	for r := 1; r < h-1; r++ {
		for c := 1; c < w-1; c++ {
			if !interior(b, w, r, c, cut) {
				continue
			}
			fg = append(fg, b[r*w+c])
			gx := (b[r*w+c+1] - b[r*w+c-1]) / 2
			gy := (b[(r+1)*w+c] - b[(r-1)*w+c]) / 2
			g = append(g, math.Hypot(gx, gy))
		}
	}
	if len(g) < minEdgePixels || !(cut > 0) {
		return nil
	}
	slices.Sort(g)
	slices.Sort(fg)
	// A noiseless flat region has q25 = 0: gradients below 0.1 % of the
	// median foreground level count as flat, keeping the score finite.
	lo := max(Quantile(g, 0.25), 1e-3*Quantile(fg, 0.5))
	return &EdgeSparsity{Score: Quantile(g, 0.9) / lo, Pixels: len(g)}
}

func interior(b []float64, w, r, c int, cut float64) bool {
	for dr := -1; dr <= 1; dr++ {
		for dc := -1; dc <= 1; dc++ {
			if b[(r+dr)*w+c+dc] < cut {
				return false
			}
		}
	}
	return true
}
