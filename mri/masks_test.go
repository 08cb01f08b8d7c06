package mri

import (
	"encoding/json"
	"math"
	"os"
	"path/filepath"
	"slices"
	"testing"

	"github.com/kspaced/kspaced/internal/testutil"
)

func columnsOf(t *testing.T, m []float32, rows, cols int) []bool {
	t.Helper()
	if len(m) != rows*cols {
		t.Fatalf("mask has %d entries, want %d×%d", len(m), rows, cols)
	}
	keep := make([]bool, cols)
	for c := range keep {
		keep[c] = m[c] != 0
	}
	for r := 1; r < rows; r++ {
		for c := range keep {
			if (m[r*cols+c] != 0) != keep[c] {
				t.Fatalf("1-D mask row %d differs from row 0 at column %d", r, c)
			}
		}
	}
	return keep
}

func TestMasksReproducibleAndOneDimensional(t *testing.T) {
	t.Parallel()
	for _, mk := range []struct {
		name string
		f    func(rows, cols int, cf, acc float64, seed uint64) ([]float32, error)
	}{{"random", RandomMask}, {"equispaced", EquispacedMask}} {
		a, err := mk.f(10, 368, 0.08, 4, 7)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := mk.f(10, 368, 0.08, 4, 7)
		if !slices.Equal(a, b) {
			t.Errorf("%s: same seed, different masks", mk.name)
		}
		differ := false
		for s := uint64(8); s < 12 && !differ; s++ {
			c, _ := mk.f(10, 368, 0.08, 4, s)
			differ = !slices.Equal(a, c)
		}
		if !differ {
			t.Errorf("%s: seeds 7…11 all give the same mask", mk.name)
		}
		columnsOf(t, a, 10, 368)
		for _, v := range a {
			if v != 0 && v != 1 {
				t.Fatalf("%s: mask value %v", mk.name, v)
			}
		}
	}
}

func TestMaskBadInput(t *testing.T) {
	t.Parallel()
	cases := []struct {
		rows, cols int
		cf, acc    float64
	}{
		{0, 10, 0.1, 4}, {10, MaxDim + 1, 0.1, 4}, {10, 10, -0.1, 4}, {10, 10, 1.5, 4},
		{10, 10, 0.1, 0.5}, {10, 10, math.NaN(), 4}, {10, 10, 0.1, math.Inf(1)},
		{10, 100, 0.5, 4}, // 50 centre columns > 100/4
	}
	for _, c := range cases {
		if _, err := RandomMask(c.rows, c.cols, c.cf, c.acc, 1); err == nil {
			t.Errorf("RandomMask%v: no error", c)
		}
		if _, err := EquispacedMask(c.rows, c.cols, c.cf, c.acc, 1); err == nil {
			t.Errorf("EquispacedMask%v: no error", c)
		}
	}
	for _, c := range []struct {
		rows, cols, calib int
		acc               float64
	}{{0, 8, 2, 2}, {16, 16, 17, 2}, {16, 16, -1, 2}, {16, 16, 12, 4}, {16, 16, 4, 0.9}} {
		if _, err := PoissonDiscMask(c.rows, c.cols, c.acc, c.calib, 1); err == nil {
			t.Errorf("PoissonDiscMask%v: no error", c)
		}
	}
}

// fastmriReference is fastMRI's RandomMaskFunc / EquispacedMaskFunc column
// logic written out again in numpy from its documented behaviour, fed the
// same uniforms (random) or offset (equispaced) as the Go code.
const fastmriReference = `
import json, numpy as np
cases = json.load(open("cases.json"))
out = []
for c in cases:
    n, cf, acc = c["cols"], c["cf"], c["acc"]
    nlow = int(round(n * cf))
    centre = np.zeros(n, dtype=bool)
    pad = (n - nlow + 1) // 2
    centre[pad:pad + nlow] = True
    if c["kind"] == "random":
        prob = (n / acc - nlow) / (n - nlow)
        m = np.array(c["u"]) < prob
        m[centre] = True
    else:
        adj = (acc * (nlow - n)) / (nlow * acc - n)
        m = centre.copy()
        if c["offset"] >= round(adj):
            out.append({"nlow": nlow, "bad": True}); continue
        s = np.around(np.arange(c["offset"], n - 1, adj)).astype(np.uint)
        m[s] = True
    out.append({"nlow": nlow, "mask": [int(v) for v in m]})
json.dump(out, open("out.json", "w"))
`

func TestOneDMasksMatchFastMRIReference(t *testing.T) {
	t.Parallel()
	py := testutil.PythonWith(t, "numpy")
	type tc struct {
		Kind   string    `json:"kind"`
		Cols   int       `json:"cols"`
		CF     float64   `json:"cf"`
		Acc    float64   `json:"acc"`
		U      []float64 `json:"u,omitempty"`
		Offset int       `json:"offset"`
	}
	var cases []tc
	rng := testRand(3)
	for _, cols := range []int{7, 8, 15, 16, 25, 33, 100, 320, 368, 371, 372} {
		for _, p := range []struct{ cf, acc float64 }{{0.08, 4}, {0.04, 8}, {0.1, 4}, {0.2, 3}, {0.25, 2}, {0.07, 6}, {0, 4}} {
			nlow := numLowFreqs(cols, p.cf)
			if float64(nlow)*p.acc >= float64(cols) {
				continue
			}
			u := make([]float64, cols)
			for i := range u {
				u[i] = rng.Float64()
			}
			cases = append(cases, tc{Kind: "random", Cols: cols, CF: p.cf, Acc: p.acc, U: u})
			adj := equispacedSpacing(cols, nlow, p.acc)
			for off := 0; off < int(math.RoundToEven(adj)); off++ {
				cases = append(cases, tc{Kind: "equispaced", Cols: cols, CF: p.cf, Acc: p.acc, Offset: off})
			}
		}
	}
	dir := t.TempDir()
	js, _ := json.Marshal(cases)
	if err := os.WriteFile(filepath.Join(dir, "cases.json"), js, 0o644); err != nil {
		t.Fatal(err)
	}
	runPython(t, py, dir, fastmriReference)
	raw, err := os.ReadFile(filepath.Join(dir, "out.json"))
	if err != nil {
		t.Fatal(err)
	}
	var ref []struct {
		NLow int   `json:"nlow"`
		Mask []int `json:"mask"`
		Bad  bool  `json:"bad"`
	}
	if err := json.Unmarshal(raw, &ref); err != nil || len(ref) != len(cases) {
		t.Fatalf("reference output: %v (%d results for %d cases)", err, len(ref), len(cases))
	}
	for i, c := range cases {
		nlow := numLowFreqs(c.Cols, c.CF)
		if nlow != ref[i].NLow {
			t.Errorf("cols %d cf %v: numLow %d, fastMRI %d", c.Cols, c.CF, nlow, ref[i].NLow)
		}
		if ref[i].Bad {
			t.Errorf("case %+v: offset out of fastMRI's range", c)
			continue
		}
		var got []bool
		if c.Kind == "random" {
			prob := (float64(c.Cols)/c.Acc - float64(nlow)) / float64(c.Cols-nlow)
			got = randomColumns(c.Cols, nlow, prob, c.U)
		} else {
			got = equispacedColumns(c.Cols, nlow, equispacedSpacing(c.Cols, nlow, c.Acc), c.Offset)
		}
		for j, g := range got {
			if g != (ref[i].Mask[j] != 0) {
				t.Errorf("%s cols %d cf %v acc %v offset %d: column %d is %v, fastMRI %v", c.Kind, c.Cols, c.CF, c.Acc, c.Offset, j, g, !g)
				break
			}
		}
	}
	t.Logf("%d cases identical to the numpy reference", len(cases))
}

func TestMaskCentrePlacement(t *testing.T) {
	t.Parallel()
	// Hand-checked: the centre run covers the DC index cols/2 and is
	// placed as fastMRI's pad = (cols − nlow + 1)//2.
	for _, c := range []struct{ cols, nlow, start int }{
		{8, 4, 2}, {8, 3, 3}, {7, 3, 2}, {7, 4, 2}, {368, 29, 170}, {320, 26, 147}, {9, 0, 5},
	} {
		if s := centreStart(c.cols, c.nlow); s != c.start {
			t.Errorf("centreStart(%d, %d) = %d, want %d", c.cols, c.nlow, s, c.start)
		}
		if c.nlow > 0 && (c.start > c.cols/2 || c.start+c.nlow <= c.cols/2) {
			t.Errorf("cols %d: run [%d,%d) misses DC %d", c.cols, c.start, c.start+c.nlow, c.cols/2)
		}
	}
	// Python's round halves to even: 25·0.1 is exactly 2.5 → 2,
	// 12·0.125 = 1.5 → 2, 20·0.125 = 2.5 → 2.
	for _, c := range []struct {
		cols int
		cf   float64
		want int
	}{{25, 0.1, 2}, {12, 0.125, 2}, {20, 0.125, 2}, {368, 0.08, 29}, {640, 0.04, 26}} {
		if got := numLowFreqs(c.cols, c.cf); got != c.want {
			t.Errorf("numLowFreqs(%d, %v) = %d, want %d", c.cols, c.cf, got, c.want)
		}
	}
}

func TestOneDMaskAcceleration(t *testing.T) {
	t.Parallel()
	// Statistics over seeds: fastMRI's random mask keeps cols/acc columns
	// on average, the equispaced one about cols/acc every time.
	for _, p := range []struct {
		cols    int
		cf, acc float64
	}{{368, 0.08, 4}, {320, 0.04, 8}, {372, 0.08, 4}, {125, 0.1, 3}} {
		const seeds = 300
		var sum, sumSq float64
		nlow := numLowFreqs(p.cols, p.cf)
		for s := uint64(0); s < seeds; s++ {
			m, err := RandomMask(1, p.cols, p.cf, p.acc, s)
			if err != nil {
				t.Fatal(err)
			}
			keep := columnsOf(t, m, 1, p.cols)
			st := centreStart(p.cols, nlow)
			for i := st; i < st+nlow; i++ {
				if !keep[i] {
					t.Fatalf("random mask misses centre column %d", i)
				}
			}
			n := float64(countTrue(keep))
			sum += n
			sumSq += n * n
		}
		mean := sum / seeds
		sd := math.Sqrt(sumSq/seeds - mean*mean)
		want := float64(p.cols) / p.acc
		// Binomial variance of the outer columns.
		prob := (want - float64(nlow)) / float64(p.cols-nlow)
		se := math.Sqrt(float64(p.cols-nlow)*prob*(1-prob)) / math.Sqrt(seeds)
		if math.Abs(mean-want) > 4*se {
			t.Errorf("random %+v: mean %.2f columns, want %.2f ± %.2f", p, mean, want, 4*se)
		}
		if sd == 0 {
			t.Errorf("random %+v: every seed gave the same count", p)
		}
		for s := uint64(0); s < 20; s++ {
			m, err := EquispacedMask(1, p.cols, p.cf, p.acc, s)
			if err != nil {
				t.Fatal(err)
			}
			n := float64(countTrue(columnsOf(t, m, 1, p.cols)))
			// Rounded positions can coincide with the centre run.
			if n > want+1.5 || n < want-0.25*float64(nlow)-2 {
				t.Errorf("equispaced %+v seed %d: %v columns, want about %.1f", p, s, n, want)
			}
		}
	}
}

func countTrue(b []bool) int {
	n := 0
	for _, v := range b {
		if v {
			n++
		}
	}
	return n
}

func countMask(m []float32) int {
	n := 0
	for _, v := range m {
		if v != 0 {
			n++
		}
	}
	return n
}

func TestPoissonDiscMask(t *testing.T) {
	t.Parallel()
	for _, c := range []struct {
		rows, cols, calib int
		acc               float64
	}{{128, 128, 24, 4}, {128, 128, 20, 8}, {96, 160, 16, 6}, {101, 77, 15, 3}, {64, 64, 0, 5}, {48, 40, 8, 1.5}} {
		m, err := PoissonDiscMask(c.rows, c.cols, c.acc, c.calib, 42)
		if err != nil {
			t.Fatalf("%+v: %v", c, err)
		}
		got := float64(len(m)) / float64(countMask(m))
		if math.Abs(got-c.acc)/c.acc > 0.05 {
			t.Errorf("%+v: acceleration %.3f", c, got)
		}
		r0, c0 := centreStart(c.rows, c.calib), centreStart(c.cols, c.calib)
		for r := r0; r < r0+c.calib; r++ {
			for k := c0; k < c0+c.calib; k++ {
				if m[r*c.cols+k] != 1 {
					t.Fatalf("%+v: calibration pixel (%d,%d) not sampled", c, r, k)
				}
			}
		}
		if c.calib > 0 && (r0 > c.rows/2 || r0+c.calib <= c.rows/2 || c0 > c.cols/2 || c0+c.calib <= c.cols/2) {
			t.Errorf("%+v: calibration region misses DC", c)
		}
		// Variable density: the inner disc is sampled more densely than
		// the outer ring even outside the calibration block.
		in, out := radialDensity(m, c.rows, c.cols, c.calib)
		if !(in > 1.3*out) {
			t.Errorf("%+v: density %.3f inside, %.3f outside", c, in, out)
		}
		if c.rows != 128 || c.acc != 4 {
			continue
		}
		again, _ := PoissonDiscMask(c.rows, c.cols, c.acc, c.calib, 42)
		if !slices.Equal(m, again) {
			t.Errorf("%+v: same seed, different masks", c)
		}
		other, _ := PoissonDiscMask(c.rows, c.cols, c.acc, c.calib, 43)
		if slices.Equal(m, other) {
			t.Errorf("%+v: seeds 42 and 43 agree", c)
		}
	}
	full, err := PoissonDiscMask(8, 8, 1, 2, 1)
	if err != nil || countMask(full) != 64 {
		t.Errorf("acceleration 1: %v, %d samples", err, countMask(full))
	}
}

// radialDensity is the sampled fraction at normalised radius < 0.4 and in
// 0.7…1.0, not counting the calibration block.
func radialDensity(m []float32, rows, cols, calib int) (in, out float64) {
	var ni, si, no, so float64
	r0, c0 := centreStart(rows, calib), centreStart(cols, calib)
	for r := 0; r < rows; r++ {
		for c := 0; c < cols; c++ {
			if r >= r0 && r < r0+calib && c >= c0 && c < c0+calib {
				continue
			}
			y := float64(r-rows/2) / (float64(rows) / 2)
			x := float64(c-cols/2) / (float64(cols) / 2)
			rad := math.Hypot(x, y)
			switch {
			case rad < 0.4:
				ni++
				si += float64(m[r*cols+c])
			case rad >= 0.7 && rad < 1:
				no++
				so += float64(m[r*cols+c])
			}
		}
	}
	return si / ni, so / no
}

// meanNNDistance is the mean distance from each sample with normalised
// radius in [0.5, 0.9) to its nearest other sample.
func meanNNDistance(m []float32, rows, cols int) float64 {
	var sum float64
	var n int
	for r := 0; r < rows; r++ {
		for c := 0; c < cols; c++ {
			if m[r*cols+c] == 0 {
				continue
			}
			rad := math.Hypot(float64(r-rows/2)/(float64(rows)/2), float64(c-cols/2)/(float64(cols)/2))
			if rad < 0.5 || rad >= 0.9 {
				continue
			}
			best := math.Inf(1)
			for dr := -12; dr <= 12; dr++ {
				for dc := -12; dc <= 12; dc++ {
					rr, cc := r+dr, c+dc
					if (dr == 0 && dc == 0) || rr < 0 || rr >= rows || cc < 0 || cc >= cols || m[rr*cols+cc] == 0 {
						continue
					}
					best = math.Min(best, math.Hypot(float64(dr), float64(dc)))
				}
			}
			sum += best
			n++
		}
	}
	return sum / float64(n)
}
