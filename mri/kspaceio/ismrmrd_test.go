package kspaceio

import (
	"encoding/binary"
	"math"
	"math/cmplx"
	"math/rand"
	"strings"
	"testing"
)

// centredDFT is the naive centred orthonormal DFT of x (sign −1 forward,
// +1 inverse) with the centre at index n/2, the reference for osRemover.
func centredDFT(x []complex128, sign float64) []complex128 {
	n := len(x)
	out := make([]complex128, n)
	for k := 0; k < n; k++ {
		var s complex128
		for j := 0; j < n; j++ {
			ph := sign * 2 * math.Pi * float64((k-n/2)*(j-n/2)) / float64(n)
			s += x[j] * cmplx.Exp(complex(0, ph))
		}
		out[k] = s / complex(math.Sqrt(float64(n)), 0)
	}
	return out
}

func relErr(got, want []complex128) float64 {
	var num, den float64
	for i := range want {
		d := got[i] - want[i]
		num += real(d)*real(d) + imag(d)*imag(d)
		den += real(want[i])*real(want[i]) + imag(want[i])*imag(want[i])
	}
	return math.Sqrt(num / den)
}

func TestOversamplingRemovalMatchesNaiveDFT(t *testing.T) {
	t.Parallel()
	r := rand.New(rand.NewSource(3))
	for _, nm := range [][2]int{{8, 4}, {128, 64}, {30, 15}, {20, 12}, {9, 5}, {640, 320}} {
		n, m := nm[0], nm[1]
		// Several lines, more than the stage holds, so flushing mid-way and
		// accumulation into the destination are both exercised.
		lines := 3
		st := newOSStage(n, m, 1)
		st.dst = st.dst[:2]
		got := make([]complex64, lines*m)
		var want []complex128
		for l := 0; l < lines; l++ {
			k := make([]complex128, n)
			buf := st.next(got[l*m : (l+1)*m])
			for i := range k {
				k[i] = complex(r.NormFloat64(), r.NormFloat64())
				buf[i] = complex64(k[i])
				k[i] = complex128(buf[i])
			}
			img := centredDFT(k, +1)
			want = append(want, centredDFT(img[n/2-m/2:n/2-m/2+m], -1)...)
		}
		st.flush()
		g := make([]complex128, len(got))
		for i, x := range got {
			g[i] = complex128(x)
		}
		if e := relErr(g, want); e > 1e-6 {
			t.Errorf("n=%d m=%d: relative error %.3g", n, m, e)
		}
	}
}

// assemble runs plan + assembler on synthetic acquisitions.
func assemble(t *testing.T, m Meta, heads []acqHead, data [][]float32) *assembler {
	t.Helper()
	p, err := planAcquisitions(m, heads)
	if err != nil {
		t.Fatal(err)
	}
	a := newAssembler(p)
	for i := range heads {
		if p.role[i] == roleSkip {
			continue
		}
		if err := a.add(i, &heads[i], data[i]); err != nil {
			t.Fatal(err)
		}
	}
	return a
}

// line returns nc channels of ns samples whose value encodes (channel, sample).
func line(nc, ns int, f func(c, s int) complex64) []float32 {
	d := make([]float32, 2*nc*ns)
	for c := 0; c < nc; c++ {
		for s := 0; s < ns; s++ {
			v := f(c, s)
			d[2*(c*ns+s)], d[2*(c*ns+s)+1] = real(v), imag(v)
		}
	}
	return d
}

func TestAssemblePlacement(t *testing.T) {
	t.Parallel()
	m := Meta{EncodedMatrix: [3]int{16, 8, 1}, ReconMatrix: [3]int{16, 8, 1}, LimitsE1: Limit{0, 5, 3, true}}
	val := func(c, x int) complex64 { return complex(float32(100*c+x+1), float32(-c)) }
	heads := []acqHead{
		// Full readout, centred, line e1=0 → row 0 + 8/2 − 3 = 1.
		{Samples: 16, Channels: 2, CenterSample: 8, E1: 0},
		// Asymmetric echo: 12 samples, centre at 4 → columns 4..15.
		{Samples: 12, Channels: 2, CenterSample: 4, E1: 1},
		// Noise: kept apart.
		{Samples: 4, Channels: 2, Flags: flagNoise},
		// A navigator: skipped.
		{Samples: 16, Channels: 2, CenterSample: 8, E1: 4, Flags: 1 << (23 - 1)},
		// The same line twice: averaged.
		{Samples: 16, Channels: 2, CenterSample: 8, E1: 5},
		{Samples: 16, Channels: 2, CenterSample: 8, E1: 5},
	}
	data := [][]float32{
		line(2, 16, func(c, s int) complex64 { return val(c, s) }),
		line(2, 12, func(c, s int) complex64 { return val(c, s+4) }),
		line(2, 4, func(c, s int) complex64 { return complex(float32(c+1), float32(s)) }),
		line(2, 16, func(c, s int) complex64 { return 99 }),
		line(2, 16, func(c, s int) complex64 { return 2 }),
		line(2, 16, func(c, s int) complex64 { return 4 }),
	}
	a := assemble(t, m, heads, data)
	scans, cal, dup, err := a.finish()
	if err != nil {
		t.Fatal(err)
	}
	if len(scans) != 1 || len(cal) != 0 || dup != 1 {
		t.Fatalf("%d scans, %d calibration, %d duplicates", len(scans), len(cal), dup)
	}
	s := scans[0]
	at := func(c, row, col int) complex64 { return s.KSpace[(c*s.Rows+row)*s.Cols+col] }
	for c := 0; c < 2; c++ {
		for x := 0; x < 16; x++ {
			if got := at(c, 1, x); got != val(c, x) {
				t.Fatalf("row 1 coil %d col %d: %v, want %v", c, x, got, val(c, x))
			}
			want := complex64(0)
			if x >= 4 {
				want = val(c, x)
			}
			if got := at(c, 2, x); got != want {
				t.Fatalf("asymmetric row coil %d col %d: %v, want %v", c, x, got, want)
			}
			if got := at(c, 6, x); got != 3 {
				t.Fatalf("averaged row coil %d col %d: %v, want 3", c, x, got)
			}
			if got := at(c, 7, x); got != 0 {
				t.Fatalf("navigator leaked into row 7: %v", got)
			}
		}
	}
	for x := 0; x < 16; x++ {
		wantMask := float32(0)
		if x >= 4 {
			wantMask = 1
		}
		if s.Mask[2*16+x] != wantMask || s.Mask[1*16+x] != 1 || s.Mask[0*16+x] != 0 {
			t.Fatalf("mask column %d: rows 0,1,2 = %v %v %v", x, s.Mask[x], s.Mask[16+x], s.Mask[32+x])
		}
	}
	// Noise covariance over 4 samples, x_c[s] = (c+1) + i s.
	noise := make([][]complex128, 2)
	for c := range noise {
		for k := 0; k < 4; k++ {
			noise[c] = append(noise[c], complex(float64(c+1), float64(k)))
		}
	}
	want := naiveCovariance(noise)
	for i := range want {
		if got := complex128(s.NoiseCov[i]); cmplx.Abs(got-want[i]) > 1e-6 {
			t.Fatalf("noise covariance entry %d = %v, want %v", i, got, want[i])
		}
	}
}

// naiveCovariance is the sample covariance of per-coil noise in float64:
// per-coil mean removed, 1/(n−1), as NumPy's np.cov(x).
func naiveCovariance(x [][]complex128) []complex128 {
	nc, n := len(x), len(x[0])
	cov := make([]complex128, nc*nc)
	for i := 0; i < nc; i++ {
		for j := 0; j < nc; j++ {
			var mi, mj complex128
			for k := 0; k < n; k++ {
				mi += x[i][k]
				mj += x[j][k]
			}
			mi /= complex(float64(n), 0)
			mj /= complex(float64(n), 0)
			for k := 0; k < n; k++ {
				cov[i*nc+j] += (x[i][k] - mi) * cmplx.Conj(x[j][k]-mj)
			}
			cov[i*nc+j] /= complex(float64(n-1), 0)
		}
	}
	return cov
}

// TestNoiseAcquisitionsCovariance: several noise acquisitions of different
// lengths and discards, a receiver offset and a noise dwell time twice the
// imaging one, against the naive float64 covariance of the kept samples.
func TestNoiseAcquisitionsCovariance(t *testing.T) {
	t.Parallel()
	r := rand.New(rand.NewSource(7))
	const nc = 3
	m := Meta{EncodedMatrix: [3]int{16, 4, 1}, ReconMatrix: [3]int{16, 4, 1}}
	heads := []acqHead{
		{Samples: 40, Channels: nc, Flags: flagNoise, DwellUs: 10, DiscardPre: 3, DiscardPost: 2},
		{Samples: 16, Channels: nc, CenterSample: 8, E1: 1, DwellUs: 5},
		{Samples: 25, Channels: nc, Flags: flagNoise, DwellUs: 10},
		{Samples: 16, Channels: nc, CenterSample: 8, E1: 2, DwellUs: 5},
	}
	noise := make([][]complex128, nc)
	var data [][]float32
	for _, h := range heads {
		d := line(nc, int(h.Samples), func(c, s int) complex64 {
			// Correlated coils with a DC offset per coil.
			return complex64(complex(r.NormFloat64()+0.5*float64(c), r.NormFloat64()-1))
		})
		if h.Flags&flagNoise != 0 {
			// Coil 1 picks up coil 0's noise: a correlated pair.
			for s := 0; s < int(h.Samples); s++ {
				d[2*(int(h.Samples)+s)] += 0.7 * d[2*s]
				d[2*(int(h.Samples)+s)+1] += 0.7 * d[2*s+1]
			}
			for c := 0; c < nc; c++ {
				for s := int(h.DiscardPre); s < int(h.Samples-h.DiscardPost); s++ {
					i := 2 * (c*int(h.Samples) + s)
					noise[c] = append(noise[c], complex(float64(d[i]), float64(d[i+1])))
				}
			}
		}
		data = append(data, d)
	}
	a := assemble(t, m, heads, data)
	scans, _, _, err := a.finish()
	if err != nil {
		t.Fatal(err)
	}
	want := naiveCovariance(noise)
	for i := range want {
		want[i] *= 2 // noise dwell 10 µs / imaging dwell 5 µs
	}
	got := make([]complex128, len(want))
	for i, v := range scans[0].NoiseCov {
		got[i] = complex128(v)
	}
	if len(noise[0]) != 35+25 {
		t.Fatalf("test kept %d noise samples", len(noise[0]))
	}
	if e := relErr(got, want); e > 1e-6 {
		t.Fatalf("noise covariance relative error %.3g\ngot  %v\nwant %v", e, got, want)
	}
	if real(want[1]) < 0.5 {
		t.Fatalf("test data not correlated: %v", want[1])
	}
}

// TestSingleNoiseSampleRefused: one noise sample per coil has no covariance.
func TestSingleNoiseSampleRefused(t *testing.T) {
	t.Parallel()
	m := Meta{EncodedMatrix: [3]int{16, 4, 1}, ReconMatrix: [3]int{16, 4, 1}}
	heads := []acqHead{
		{Samples: 1, Channels: 2, Flags: flagNoise},
		{Samples: 16, Channels: 2, CenterSample: 8, E1: 1},
	}
	data := [][]float32{line(2, 1, func(c, s int) complex64 { return 1 }), line(2, 16, func(c, s int) complex64 { return 1 })}
	a := assemble(t, m, heads, data)
	if _, _, _, err := a.finish(); err == nil || !strings.Contains(err.Error(), "at least 2") {
		t.Fatalf("err = %v", err)
	}
}

func TestAssembleReversedLine(t *testing.T) {
	t.Parallel()
	m := Meta{EncodedMatrix: [3]int{16, 4, 1}, ReconMatrix: [3]int{16, 4, 1}}
	val := func(c, x int) complex64 { return complex(float32(x+1), float32(c)) }
	// 14 stored samples, 1 discarded at each end of the stored order; the
	// line is reversed and its centre (in corrected order) is sample 7, so
	// corrected sample p lands in column p + 1 and stored j in 14 − j.
	h := acqHead{Samples: 14, Channels: 3, CenterSample: 7, DiscardPre: 1, DiscardPost: 1, E1: 1, Flags: flagReverse}
	d := line(3, 14, func(c, j int) complex64 { return val(c, 14-j) })
	a := assemble(t, m, []acqHead{h}, [][]float32{d})
	s := a.scans[0]
	for c := 0; c < 3; c++ {
		for x := 0; x < 16; x++ {
			got := s.KSpace[(c*4+1)*16+x]
			want := complex64(0)
			// kept stored j ∈ [1, 13) → columns 14−j ∈ [2, 13].
			if x >= 2 && x <= 13 {
				want = val(c, x)
			}
			if got != want {
				t.Fatalf("coil %d col %d: %v, want %v", c, x, got, want)
			}
			if m := s.Mask[1*16+x]; (m == 1) != (x >= 2 && x <= 13) {
				t.Fatalf("mask col %d = %v", x, m)
			}
		}
	}
}

func TestPlanRejects(t *testing.T) {
	t.Parallel()
	m := Meta{EncodedMatrix: [3]int{16, 8, 1}, ReconMatrix: [3]int{8, 8, 1}, Trajectory: "cartesian"}
	ok := acqHead{Samples: 16, Channels: 2, CenterSample: 8}
	cases := map[string]struct {
		meta  Meta
		heads []acqHead
		want  string
	}{
		"radial":        {Meta{EncodedMatrix: m.EncodedMatrix, Trajectory: "radial"}, []acqHead{ok}, "Cartesian"},
		"3-D":           {Meta{EncodedMatrix: [3]int{16, 8, 4}}, []acqHead{ok}, "3-D"},
		"no imaging":    {m, []acqHead{{Samples: 16, Channels: 2, Flags: flagNoise}}, "no imaging"},
		"channels":      {m, []acqHead{ok, {Samples: 16, Channels: 3, CenterSample: 8}}, "channels"},
		"zero channels": {m, []acqHead{{Samples: 16, CenterSample: 8}}, "channels"},
		"line outside":  {m, []acqHead{{Samples: 16, Channels: 2, CenterSample: 8, E1: 8}}, "outside"},
		"too long":      {m, []acqHead{{Samples: 32, Channels: 2, CenterSample: 16}}, "does not fit"},
		"off centre":    {m, []acqHead{{Samples: 16, Channels: 2, CenterSample: 2}}, "does not fit"},
		"discard all":   {m, []acqHead{{Samples: 4, Channels: 2, DiscardPre: 2, DiscardPost: 2}}, "discarded"},
		"e2 in 2-D":     {m, []acqHead{{Samples: 16, Channels: 2, CenterSample: 8, E2: 1}}, "step_2"},
		"noise coils":   {m, []acqHead{{Samples: 16, Channels: 4, Flags: flagNoise}, ok}, "channels"},
	}
	for name, c := range cases {
		_, err := planAcquisitions(c.meta, c.heads)
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: error %v, want one mentioning %q", name, err, c.want)
		}
	}
	p, err := planAcquisitions(m, []acqHead{ok})
	if err != nil {
		t.Fatal(err)
	}
	a := newAssembler(p)
	if err := a.add(0, &ok, make([]float32, 10)); err == nil || !strings.Contains(err.Error(), "announces") {
		t.Errorf("short data: %v", err)
	}
}

func TestPlanGroupsAndSeparateCalibration(t *testing.T) {
	t.Parallel()
	m := Meta{EncodedMatrix: [3]int{8, 8, 1}, ReconMatrix: [3]int{8, 8, 1}, CalibrationMode: "separate"}
	h := func(slice, rep, e1 uint16, flags uint64) acqHead {
		return acqHead{Samples: 8, Channels: 1, CenterSample: 4, Slice: slice, Repetition: rep, E1: e1, Flags: flags}
	}
	heads := []acqHead{h(1, 0, 0, 0), h(0, 1, 0, 0), h(0, 0, 0, 0), h(1, 1, 2, 0), h(0, 0, 3, flagCalib), h(0, 0, 4, flagCalibImaging)}
	p, err := planAcquisitions(m, heads)
	if err != nil {
		t.Fatal(err)
	}
	want := []SliceLabel{{Slice: 0}, {Slice: 1}, {Slice: 0, Repetition: 1}, {Slice: 1, Repetition: 1}}
	if len(p.labels) != len(want) {
		t.Fatalf("labels %v", p.labels)
	}
	for i := range want {
		if p.labels[i] != want[i] {
			t.Fatalf("labels %v, want %v", p.labels, want)
		}
	}
	if p.role[4] != roleCalib || p.role[5] != roleImage || p.group[5] != 0 || p.group[0] != 1 || len(p.calLabels) != 1 {
		t.Fatalf("roles %v groups %v cal %v", p.role, p.group, p.calLabels)
	}
}

// FuzzPlan: arbitrary acquisition headers (and matrix sizes) must be either
// rejected or placed without panics or out-of-range writes.
func FuzzPlan(f *testing.F) {
	f.Add(uint16(16), uint16(8), uint16(8), []byte{16, 0, 2, 0, 8, 0, 0, 0, 0, 0, 3, 0})
	f.Add(uint16(64), uint16(32), uint16(32), make([]byte, 48))
	f.Fuzz(func(t *testing.T, ex, ey, rx uint16, raw []byte) {
		m := Meta{EncodedMatrix: [3]int{int(ex%300) + 1, int(ey%300) + 1, 1}, ReconMatrix: [3]int{int(rx%300) + 1, 1, 1}}
		var heads []acqHead
		for len(raw) >= 14 && len(heads) < 64 {
			u := func(i int) uint16 { return binary.LittleEndian.Uint16(raw[i:]) }
			heads = append(heads, acqHead{Samples: u(0) % 700, Channels: u(2) % 6, CenterSample: u(4) % 700,
				DiscardPre: u(6) % 8, DiscardPost: u(8) % 8, E1: u(10) % 400, Slice: u(12) % 3,
				Flags: uint64(raw[0]&7) << 18})
			raw = raw[14:]
		}
		p, err := planAcquisitions(m, heads)
		if err != nil {
			return
		}
		a := newAssembler(p)
		for i := range heads {
			if p.role[i] == roleSkip {
				continue
			}
			h := heads[i]
			if err := a.add(i, &h, make([]float32, 2*int(h.Samples)*int(h.Channels))); err != nil {
				t.Fatalf("planned acquisition %d rejected: %v", i, err)
			}
		}
		scans, _, _, err := a.finish()
		if err != nil {
			return // e.g. a single noise sample per coil: refused, not a panic
		}
		for _, s := range scans {
			if err := s.Validate(); err != nil {
				t.Fatal(err)
			}
		}
	})
}
