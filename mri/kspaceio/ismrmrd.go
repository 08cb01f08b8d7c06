package kspaceio

import (
	"fmt"
	"math"
	"sort"
	"strings"

	"github.com/kspaced/kspaced/fft"
	"github.com/kspaced/kspaced/mri"
)

// ISMRMRD acquisition flags (bit n-1 of AcquisitionHeader.flags for flag n).
const (
	flagNoise        = 1 << (19 - 1)
	flagCalib        = 1 << (20 - 1)
	flagCalibImaging = 1 << (21 - 1)
	flagReverse      = 1 << (22 - 1)
	// Acquisitions that are not k-space of the image: navigators, phase
	// correction, feedback, dummy scans, surface-coil correction and phase
	// stabilisation (flags 23, 24, 26–31).
	flagsNotImaging = 1<<(23-1) | 1<<(24-1) | 1<<(26-1) | 1<<(27-1) | 1<<(28-1) | 1<<(29-1) | 1<<(30-1) | 1<<(31-1)
)

// MaxAcquisitions bounds the acquisition count of an ISMRMRD file.
const MaxAcquisitions = 1 << 24

// acqHead is the part of an ISMRMRD AcquisitionHeader that assembly needs.
type acqHead struct {
	Flags                                 uint64
	Samples, Channels                     uint16
	DiscardPre, DiscardPost, CenterSample uint16
	EncodingRef                           uint16
	DwellUs                               float32
	E1, E2, Average, Slice, Contrast      uint16
	Phase, Repetition, Set                uint16
}

// SliceLabel names the ISMRMRD counters one assembled slice belongs to.
type SliceLabel struct {
	Slice, Contrast, Phase, Repetition, Set, Average int
}

type acqRole uint8

const (
	roleSkip acqRole = iota
	roleNoise
	roleImage
	roleCalib // calibration-only line of a "separate" calibration scan
)

// acqPlan says, from the headers alone, where every acquisition goes and how
// much memory the result takes, so that nothing is allocated before the
// whole file has been checked.
type acqPlan struct {
	encX, encY, reconX int // reconX == encX when no oversampling is removed
	rowOffset          int // row = e1 + rowOffset
	coils              int
	role               []acqRole
	group              []int32 // index into labels (roleImage) or calLabels (roleCalib)
	center             []int32 // resolved centre sample per acquisition
	labels             []SliceLabel
	calLabels          []SliceLabel // one per slice index with separate calibration lines
	noiseSamples       int          // samples per coil over all noise acquisitions
	noiseDwell         float32
	imageDwell         float32
	dataBytes          int64 // bytes of sample data the headers announce (all roles)
	counts             map[string]int
}

// planAcquisitions classifies every acquisition and checks it against the
// encoded matrix. It never allocates more than a few words per acquisition.
func planAcquisitions(m Meta, heads []acqHead) (*acqPlan, error) {
	if len(heads) > MaxAcquisitions {
		return nil, fmt.Errorf("%d acquisitions, limit %d", len(heads), MaxAcquisitions)
	}
	if t := strings.ToLower(m.Trajectory); t != "" && t != "cartesian" {
		return nil, fmt.Errorf("trajectory %q: only Cartesian k-space is supported", m.Trajectory)
	}
	if m.EncodedMatrix[2] > 1 {
		return nil, fmt.Errorf("3-D encoding (encoded z = %d) is not supported", m.EncodedMatrix[2])
	}
	p := &acqPlan{
		encX: m.EncodedMatrix[0], encY: m.EncodedMatrix[1], reconX: m.EncodedMatrix[0],
		role: make([]acqRole, len(heads)), group: make([]int32, len(heads)), center: make([]int32, len(heads)),
		counts: map[string]int{},
	}
	if r := m.ReconMatrix[0]; r > 0 && r < p.encX {
		p.reconX = r
	}
	// Lines sit at their index unless the limits put the k-space centre
	// elsewhere than encY/2 (partial Fourier).
	if m.LimitsE1.Known {
		p.rowOffset = p.encY/2 - m.LimitsE1.Center
	}
	separate := strings.EqualFold(m.CalibrationMode, "separate")
	type key struct{ rep, con, pha, set, avg, slc uint16 }
	groups := map[key]int32{}
	calGroups := map[uint16]int32{}
	var keys []key
	var calSlices []uint16
	noiseCoils := 0
	for i := range heads {
		h := &heads[i]
		ns, nc := int(h.Samples), int(h.Channels)
		p.dataBytes += int64(ns) * int64(nc) * 8
		switch {
		case h.Flags&flagsNotImaging != 0:
			p.counts["skipped"]++
			continue
		case h.EncodingRef != 0:
			p.counts["other_encoding"]++
			continue
		}
		if nc < 1 || nc > mri.MaxCoils {
			return nil, fmt.Errorf("acquisition %d: %d channels outside [1, %d]", i, nc, mri.MaxCoils)
		}
		kept := ns - int(h.DiscardPre) - int(h.DiscardPost)
		if ns < 1 || kept < 1 {
			return nil, fmt.Errorf("acquisition %d: %d samples with %d+%d discarded", i, ns, h.DiscardPre, h.DiscardPost)
		}
		if h.Flags&flagNoise != 0 {
			if noiseCoils == 0 {
				noiseCoils, p.noiseDwell = nc, h.DwellUs
			}
			if nc != noiseCoils {
				return nil, fmt.Errorf("acquisition %d: noise measurement with %d channels, earlier ones have %d", i, nc, noiseCoils)
			}
			p.role[i] = roleNoise
			p.noiseSamples += kept
			p.counts["noise"]++
			continue
		}
		if p.coils == 0 {
			p.coils, p.imageDwell = nc, h.DwellUs
		}
		if nc != p.coils {
			return nil, fmt.Errorf("acquisition %d: %d channels, earlier acquisitions have %d", i, nc, p.coils)
		}
		if h.DwellUs != p.imageDwell {
			p.imageDwell = 0 // mixed dwell times: no noise scaling
		}
		if h.E2 != 0 {
			return nil, fmt.Errorf("acquisition %d: kspace_encode_step_2 = %d in a 2-D encoding", i, h.E2)
		}
		row := int(h.E1) + p.rowOffset
		if row < 0 || row >= p.encY {
			return nil, fmt.Errorf("acquisition %d: phase-encoding line %d lands on row %d, outside the encoded matrix y = %d", i, h.E1, row, p.encY)
		}
		c := int(h.CenterSample)
		if c == 0 && ns == p.encX {
			c = ns / 2 // converters often leave centre_sample unset for full readouts
		}
		first := p.encX/2 - c + int(h.DiscardPre)
		if first < 0 || first+kept > p.encX {
			return nil, fmt.Errorf("acquisition %d: readout of %d samples centred at %d does not fit the encoded matrix x = %d", i, ns, c, p.encX)
		}
		p.center[i] = int32(c)
		if separate && h.Flags&flagCalib != 0 && h.Flags&flagCalibImaging == 0 {
			g, ok := calGroups[h.Slice]
			if !ok {
				g = int32(len(calSlices))
				calGroups[h.Slice] = g
				calSlices = append(calSlices, h.Slice)
			}
			p.role[i], p.group[i] = roleCalib, g
			p.counts["calibration"]++
			continue
		}
		if h.Flags&(flagCalib|flagCalibImaging) != 0 {
			p.counts["calibration"]++
		}
		k := key{h.Repetition, h.Contrast, h.Phase, h.Set, h.Average, h.Slice}
		g, ok := groups[k]
		if !ok {
			g = int32(len(keys))
			groups[k] = g
			keys = append(keys, k)
		}
		p.role[i], p.group[i] = roleImage, g
		p.counts["imaging"]++
	}
	if len(keys) == 0 {
		return nil, fmt.Errorf("no imaging acquisitions (%d acquisitions, %d noise, %d skipped)", len(heads), p.counts["noise"], p.counts["skipped"])
	}
	if noiseCoils != 0 && noiseCoils != p.coils {
		return nil, fmt.Errorf("noise measurements have %d channels, imaging has %d", noiseCoils, p.coils)
	}
	// Order slices fastest, then average, set, phase, contrast, repetition.
	order := make([]int32, len(keys))
	for i := range order {
		order[i] = int32(i)
	}
	sort.Slice(order, func(a, b int) bool {
		x, y := keys[order[a]], keys[order[b]]
		for _, d := range [][2]uint16{{x.rep, y.rep}, {x.con, y.con}, {x.pha, y.pha}, {x.set, y.set}, {x.avg, y.avg}, {x.slc, y.slc}} {
			if d[0] != d[1] {
				return d[0] < d[1]
			}
		}
		return false
	})
	rank := make([]int32, len(keys))
	p.labels = make([]SliceLabel, len(keys))
	for r, g := range order {
		rank[g] = int32(r)
		k := keys[g]
		p.labels[r] = SliceLabel{Slice: int(k.slc), Contrast: int(k.con), Phase: int(k.pha), Repetition: int(k.rep), Set: int(k.set), Average: int(k.avg)}
	}
	for i := range p.role {
		if p.role[i] == roleImage {
			p.group[i] = rank[p.group[i]]
		}
	}
	for _, s := range calSlices {
		p.calLabels = append(p.calLabels, SliceLabel{Slice: int(s)})
	}
	return p, nil
}

// scanBytes is the memory the assembled volume takes, noise samples included.
func (p *acqPlan) scanBytes() int64 {
	per := int64(p.coils)*int64(p.encY)*int64(p.reconX)*8 + int64(p.encY)*int64(p.reconX)*4
	return per*int64(len(p.labels)+len(p.calLabels)) + int64(p.coils)*int64(p.noiseSamples)*8
}

// assembler places acquisitions into per-slice k-space as their data arrive.
type assembler struct {
	p        *acqPlan
	scans    []mri.Scan
	cal      []mri.Scan
	hits     [][]uint16  // per scan (then per calibration scan): acquisitions per row
	noise    []complex64 // [coil][sample], the noise acquisitions' kept samples in order
	noiseN   int         // samples per coil so far
	os       *osStage    // nil when the readout is kept as encoded
	overflow bool
}

func newAssembler(p *acqPlan) *assembler {
	a := &assembler{p: p}
	alloc := func(n int) []mri.Scan {
		s := make([]mri.Scan, n)
		for i := range s {
			s[i] = mri.Scan{Coils: p.coils, Rows: p.encY, Cols: p.reconX,
				KSpace: make([]complex64, p.coils*p.encY*p.reconX), Mask: make([]float32, p.encY*p.reconX)}
			a.hits = append(a.hits, make([]uint16, p.encY))
		}
		return s
	}
	a.scans = alloc(len(p.labels))
	a.cal = alloc(len(p.calLabels))
	if p.noiseSamples > 0 {
		a.noise = make([]complex64, p.coils*p.noiseSamples)
	}
	if p.reconX < p.encX {
		a.os = newOSStage(p.encX, p.reconX, p.coils)
	}
	return a
}

// add places acquisition i, whose interleaved (re, im) samples are data,
// laid out [channel][sample] as ISMRMRD stores them.
func (a *assembler) add(i int, h *acqHead, data []float32) error {
	p := a.p
	ns, nc := int(h.Samples), int(h.Channels)
	if len(data) != 2*ns*nc {
		return fmt.Errorf("acquisition %d: data holds %d values, header announces %d samples × %d channels × 2", i, len(data), ns, nc)
	}
	pre, post := int(h.DiscardPre), int(h.DiscardPost)
	switch p.role[i] {
	case roleNoise:
		a.addNoise(data, ns, nc, pre, post)
		return nil
	case roleSkip:
		return nil
	}
	var s *mri.Scan
	var hits []uint16
	if p.role[i] == roleImage {
		s, hits = &a.scans[p.group[i]], a.hits[p.group[i]]
	} else {
		s, hits = &a.cal[p.group[i]], a.hits[len(a.scans)+int(p.group[i])]
	}
	row := int(h.E1) + p.rowOffset
	reverse := h.Flags&flagReverse != 0
	first := p.encX/2 - int(p.center[i])
	if hits[row] == math.MaxUint16 {
		a.overflow = true
		return nil
	}
	hits[row]++
	for c := 0; c < nc; c++ {
		src := data[2*c*ns : 2*(c+1)*ns]
		dst := s.KSpace[(c*s.Rows+row)*s.Cols : (c*s.Rows+row+1)*s.Cols]
		line := dst // without resampling, samples add straight into place
		if a.os != nil {
			line = a.os.next(dst)
		}
		// Samples [pre, ns-post) in stored order; a reversed readout was
		// recorded back to front, so stored sample j belongs at ns-1-j.
		for j := pre; j < ns-post; j++ {
			pos := j
			if reverse {
				pos = ns - 1 - j
			}
			line[first+pos] += complex(src[2*j], src[2*j+1])
		}
	}
	m := s.Mask[row*s.Cols : (row+1)*s.Cols]
	if a.os != nil {
		// After the readout is resampled every column of the line is measured.
		for x := range m {
			m[x] = 1
		}
	} else {
		lo, hi := first+pre, first+ns-post
		if reverse {
			lo, hi = first+post, first+ns-pre
		}
		for x := lo; x < hi; x++ {
			m[x] = 1
		}
	}
	return nil
}

// addNoise appends a noise acquisition's kept samples to each coil's row of
// a.noise, for mri.NoiseCovariance once all have arrived.
func (a *assembler) addNoise(data []float32, ns, nc, pre, post int) {
	n := a.p.noiseSamples
	for c := 0; c < nc; c++ {
		row := a.noise[c*n+a.noiseN : c*n+a.noiseN+ns-pre-post]
		for s := pre; s < ns-post; s++ {
			row[s-pre] = complex(data[2*(c*ns+s)], data[2*(c*ns+s)+1])
		}
	}
	a.noiseN += ns - pre - post
}

// finish averages repeated lines and attaches the noise covariance.
func (a *assembler) finish() (scans, cal []mri.Scan, dup int, err error) {
	if a.os != nil {
		a.os.flush()
	}
	all := append(append([]mri.Scan{}, a.scans...), a.cal...)
	for g := range all {
		s := &all[g]
		for row, n := range a.hits[g] {
			if n < 2 {
				continue
			}
			dup += int(n) - 1
			inv := complex(1/float32(n), 0)
			for c := 0; c < s.Coils; c++ {
				line := s.KSpace[(c*s.Rows+row)*s.Cols : (c*s.Rows+row+1)*s.Cols]
				for x := range line {
					line[x] *= inv
				}
			}
		}
	}
	if a.noiseN > 0 {
		cov, err := mri.NoiseCovariance(a.noise, a.p.coils)
		if err != nil {
			return nil, nil, 0, fmt.Errorf("noise acquisitions: %w", err)
		}
		// Noise variance scales with bandwidth, i.e. inversely with dwell time.
		if a.p.noiseDwell > 0 && a.p.imageDwell > 0 {
			r := complex(float64(a.p.noiseDwell)/float64(a.p.imageDwell), 0)
			for i := range cov {
				cov[i] = complex64(complex128(cov[i]) * r)
			}
		}
		for g := range a.scans {
			a.scans[g].NoiseCov = append([]complex64(nil), cov...)
		}
	}
	return a.scans, a.cal, dup, nil
}

// osStage removes readout oversampling from batches of lines: centred
// inverse DFT of length encX, keep the central reconX image samples, centred
// forward DFT of length reconX (both orthonormal, so sample values and noise
// variance keep their scale). Lines are staged and transformed together so
// the FFT runs on large batches; each result is added to its destination.
type osStage struct {
	encX, reconX int
	big, small   []complex64
	dst          [][]complex64
	n            int
}

// osStageValues bounds the staging buffer (4 MiB of complex64).
const osStageValues = 1 << 19

func newOSStage(encX, reconX, minLines int) *osStage {
	lines := max(minLines, osStageValues/encX)
	return &osStage{encX: encX, reconX: reconX, big: make([]complex64, lines*encX),
		small: make([]complex64, lines*reconX), dst: make([][]complex64, lines)}
}

// next returns the zeroed buffer of the next staged line, whose result will
// be added to dst.
func (st *osStage) next(dst []complex64) []complex64 {
	if st.n == len(st.dst) {
		st.flush()
	}
	l := st.big[st.n*st.encX : (st.n+1)*st.encX]
	clear(l)
	st.dst[st.n] = dst
	st.n++
	return l
}

func (st *osStage) flush() {
	n, ex, rx := st.n, st.encX, st.reconX
	if n == 0 {
		return
	}
	big, small := st.big[:n*ex], st.small[:n*rx]
	fft.Inverse(big, big, 1, ex)
	for i := 0; i < n; i++ {
		// centred image index ex/2 − rx/2 + j becomes centred index j.
		copy(small[i*rx:(i+1)*rx], big[i*ex+ex/2-rx/2:])
	}
	fft.Forward(small, small, 1, rx)
	for i, d := range st.dst[:n] {
		line := small[i*rx : (i+1)*rx]
		for x := range d {
			d[x] += line[x]
		}
		st.dst[i] = nil
	}
	st.n = 0
}
