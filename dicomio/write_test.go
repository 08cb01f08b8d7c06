package dicomio

import (
	"errors"
	"image"
	"image/png"
	"math"
	"math/rand"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/kspaced/kspaced/internal/testutil"
)

// phantom gives smooth anatomy-like mean, std and zero-filled volumes in
// scanner-like units (0 to about 3000).
func phantom(slices, rows, cols int) (mean, std, zf []float32) {
	n := slices * rows * cols
	mean, std, zf = make([]float32, n), make([]float32, n), make([]float32, n)
	for s := 0; s < slices; s++ {
		for r := 0; r < rows; r++ {
			for c := 0; c < cols; c++ {
				i := (s*rows+r)*cols + c
				dr, dc := float64(r)-float64(rows)/2, float64(c)-float64(cols)/2
				v := 2800*math.Exp(-(dr*dr+dc*dc)/(2*float64(rows*cols)/16)) + 40*float64(s)
				if (r/4+c/4)%2 == 0 {
					v += 150
				}
				mean[i] = float32(v)
				std[i] = float32(5 + 60*float64(r)/float64(rows) + 0.01*v)
				zf[i] = float32(0.8*v + 90*math.Sin(float64(c)/2))
			}
		}
	}
	return
}

// dciodvfy runs dicom3tools' validator: any "Error" line fails the test;
// warnings are returned.
func dciodvfy(t *testing.T, file string) []string {
	t.Helper()
	tool := testutil.Tool(t, "dciodvfy")
	out, _ := exec.Command(tool, file).CombinedOutput()
	var warns []string
	for _, l := range strings.Split(string(out), "\n") {
		switch {
		case strings.HasPrefix(l, "Error"):
			t.Errorf("dciodvfy %s: %s", filepath.Base(file), l)
		case strings.HasPrefix(l, "Warning"):
			warns = append(warns, l)
		}
	}
	return warns
}

// dcmdump runs dcmtk's parser, which must report nothing on stderr and no
// warning or error lines.
func dcmdump(t *testing.T, file string) string {
	t.Helper()
	tool := testutil.Tool(t, "dcmdump")
	cmd := exec.Command(tool, "-M", file)
	var stderr strings.Builder
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil || stderr.Len() > 0 || regexp.MustCompile(`(?m)^[WEF]: `).Match(out) {
		t.Errorf("dcmdump %s: %v\n%s%s", filepath.Base(file), err, stderr.String(), out)
	}
	return string(out)
}

var fixedTime = time.Date(2025, 3, 14, 15, 9, 26, 0, time.UTC)

func writeTestScan(t *testing.T, dir string, study Study, source *Series, slices, rows, cols int) ([]SeriesRef, [3][]float32) {
	t.Helper()
	mean, std, zf := phantom(slices, rows, cols)
	var series []OutputSeries
	for _, s := range []struct {
		kind string
		img  []float32
	}{{KindMean, mean}, {KindStd, std}, {KindZeroFilled, zf}} {
		series = append(series, OutputSeries{
			Kind: s.kind, Method: "MMPS", Prior: "knee-em8", Images: s.img,
			Slices: slices, Rows: rows, Cols: cols, Source: source,
		})
	}
	refs, err := WriteScan(dir, study, series, WriteOptions{Time: fixedTime, SoftwareVersions: "kspaced test"})
	if err != nil {
		t.Fatal(err)
	}
	return refs, [3][]float32{mean, std, zf}
}

// TestWriteNewStudy writes mean, std and zero-filled series of a scan with
// no DICOM study (patient from a k-space header, with non-ASCII letters),
// then checks every file with dciodvfy and dcmdump, reads them back here
// and with pydicom.
func TestWriteNewStudy(t *testing.T) {
	dir := t.TempDir()
	patient := Patient{Name: "Müller^Jürgen", ID: "KS-0042", BirthDate: "19700401", Sex: "M"}
	study, err := NewStudy(patient, "knee, accelerated ×4", "", fixedTime)
	if err != nil {
		t.Fatal(err)
	}
	const slices, rows, cols = 3, 40, 56
	refs, imgs := writeTestScan(t, dir, study, nil, slices, rows, cols)

	// Every file passes both peer tools.
	warnings := map[string]int{}
	var files []string
	for _, r := range refs {
		files = append(files, r.Files...)
	}
	for _, f := range files {
		for _, w := range dciodvfy(t, f) {
			warnings[w]++
		}
		dcmdump(t, f)
	}
	var ws []string
	for w := range warnings {
		ws = append(ws, w)
	}
	sort.Strings(ws)
	t.Logf("dciodvfy: no errors in %d files; warnings:\n  %s", len(files), strings.Join(ws, "\n  "))

	// Our reader: one study, three series in number order, same frame of
	// reference, pixels within half a quantisation step.
	studies, errs := ReadStudies(dir)
	if len(errs) != 0 || len(studies) != 1 || len(studies[0].Series) != 3 {
		t.Fatalf("read back: %d studies, errors %v", len(studies), errs)
	}
	st := studies[0]
	if st.Study.InstanceUID != study.InstanceUID || st.Study.Patient != patient || st.Study.Description != study.Description {
		t.Errorf("study read back as %+v, wrote %+v", st.Study, study)
	}
	for k, se := range st.Series {
		ref := refs[k]
		if se.InstanceUID != ref.SeriesInstanceUID || se.Number != ref.Number || se.Description != ref.Description {
			t.Errorf("series %d: %s #%d %q, wrote %s #%d %q", k, se.InstanceUID, se.Number, se.Description, ref.SeriesInstanceUID, ref.Number, ref.Description)
		}
		if se.FrameOfReferenceUID != refs[0].FrameOfReferenceUID {
			t.Errorf("series %d frame of reference differs", k)
		}
		vol, n, r, c, err := se.Volume()
		if err != nil || n != slices || r != rows || c != cols {
			t.Fatalf("series %d volume %d×%d×%d: %v", k, n, r, c, err)
		}
		checkQuantised(t, se.Description, vol, imgs[k], ref.RescaleSlope)
		g := se.Geometry()
		for s := range g {
			want := SliceGeometry{
				Position:    [3]float64{-float64(cols-1) / 2, -float64(rows-1) / 2, float64(s) - 1},
				Orientation: [6]float64{1, 0, 0, 0, 1, 0}, PixelSpacing: [2]float64{1, 1}, SliceThickness: 1,
			}
			if g[s] != want {
				t.Errorf("series %d slice %d geometry %+v, want %+v", k, s, g[s], want)
			}
		}
	}

	// pydicom, an independent reader, sees the same.
	py := pydicomRead(t, files...)
	for i, p := range py {
		k, s := i/slices, i%slices
		if p.Error != "" {
			t.Fatalf("pydicom %s: %s", files[i], p.Error)
		}
		if p.PatientName != patient.Name || p.SpecificCharacterSet != "ISO_IR 192" || p.StudyUID != study.InstanceUID {
			t.Errorf("pydicom: patient %q charset %q study %s", p.PatientName, p.SpecificCharacterSet, p.StudyUID)
		}
		if strings.Join(p.ImageType, `\`) != strings.Join((&OutputSeries{Kind: []string{KindMean, KindStd, KindZeroFilled}[k], Method: "MMPS"}).imageType(), `\`) {
			t.Errorf("pydicom image type %v", p.ImageType)
		}
		if p.SeriesDescription != refs[k].Description || !strings.Contains(p.DerivationDescription, "knee-em8") {
			t.Errorf("pydicom description %q derivation %q", p.SeriesDescription, p.DerivationDescription)
		}
		if p.InstanceNumber != s+1 || p.SOPUID != refs[k].SOPInstanceUIDs[s] {
			t.Errorf("pydicom instance %d %s", p.InstanceNumber, p.SOPUID)
		}
		// Each series lists the ones written before it.
		if len(p.RelatedSeries) != k {
			t.Errorf("series %d relates to %v", k, p.RelatedSeries)
		}
		px := make([]float32, len(p.Pixels))
		for j, v := range p.Pixels {
			px[j] = float32(v)
		}
		checkQuantised(t, "pydicom "+refs[k].Description, px, imgs[k][s*rows*cols:(s+1)*rows*cols], refs[k].RescaleSlope)
	}
}

// checkQuantised: every value within half a step (plus float32 rounding)
// and within 1e-4 of the range.
func checkQuantised(t *testing.T, what string, got, want []float32, slope float64) {
	t.Helper()
	lo, hi := math.Inf(1), math.Inf(-1)
	for _, v := range want {
		lo, hi = math.Min(lo, float64(v)), math.Max(hi, float64(v))
	}
	worst := 0.0
	for i := range want {
		worst = math.Max(worst, math.Abs(float64(got[i])-float64(want[i])))
	}
	tol := slope/2 + 1e-6*math.Max(math.Abs(lo), math.Abs(hi))
	if worst > tol || (hi > lo && worst > 1e-4*(hi-lo)) {
		t.Errorf("%s: error %g, step/2 %g, range %g", what, worst, slope/2, hi-lo)
	}
}

// TestWriteIntoSourceStudy derives series from a real acquired series
// (pydicom's MR_small): patient and study modules come from it, the source
// image and series are referenced, and geometry follows it, refitted when
// the reconstruction matrix differs.
func TestWriteIntoSourceStudy(t *testing.T) {
	studies, errs := ReadStudies(pydicomFile(t, "MR_small.dcm"))
	if len(errs) != 0 {
		t.Fatal(errs)
	}
	src := studies[0]
	se := src.Series[0]
	in := se.Instances[0]
	orig := pydicomRead(t, in.Path)[0]
	for _, size := range []int{64, 96} {
		dir := t.TempDir()
		refs, _ := writeTestScan(t, dir, src.Study, se, 1, size, size)
		for _, r := range refs {
			dciodvfy(t, r.Files[0])
			dcmdump(t, r.Files[0])
		}
		py := pydicomRead(t, refs[0].Files[0], refs[1].Files[0])
		for _, p := range py {
			if p.StudyUID != orig.StudyUID || p.PatientName != orig.PatientName || p.PatientID != orig.PatientID || p.StudyDate != orig.StudyDate {
				t.Errorf("study/patient not copied: %+v vs %+v", p, orig)
			}
			if p.SpecificCharacterSet != "" {
				t.Errorf("ASCII-only output declares character set %q", p.SpecificCharacterSet)
			}
			if p.FrameOfRef != orig.FrameOfRef {
				t.Errorf("frame of reference %s, source %s", p.FrameOfRef, orig.FrameOfRef)
			}
			if len(p.SourceImages) != 1 || p.SourceImages[0] != orig.SOPUID {
				t.Errorf("source images %v, want [%s]", p.SourceImages, orig.SOPUID)
			}
			if len(p.RelatedSeries) == 0 || p.RelatedSeries[0] != orig.SeriesUID {
				t.Errorf("related series %v, want the source %s first", p.RelatedSeries, orig.SeriesUID)
			}
			if p.SeriesNumber/100 != orig.SeriesNumber {
				t.Errorf("series number %d from source %d", p.SeriesNumber, orig.SeriesNumber)
			}
			closeAll(t, "orientation", p.IOP, orig.IOP)
			// Same field of view: the outer corner of the first pixel and
			// the extent along rows and columns are the source's.
			for k := 0; k < 3; k++ {
				corner := func(pos, sp, iop []float64) float64 {
					return pos[k] - 0.5*sp[1]*iop[k] - 0.5*sp[0]*iop[3+k]
				}
				if math.Abs(corner(p.IPP, p.PixelSpacing, p.IOP)-corner(orig.IPP, orig.PixelSpacing, orig.IOP)) > 1e-6 {
					t.Errorf("%d×%d: field-of-view corner moved: %v/%v vs %v/%v", size, size, p.IPP, p.PixelSpacing, orig.IPP, orig.PixelSpacing)
				}
			}
			if math.Abs(p.PixelSpacing[0]*float64(p.Rows)-orig.PixelSpacing[0]*float64(orig.Rows)) > 1e-6 {
				t.Errorf("field of view %v×%d, source %v×%d", p.PixelSpacing, p.Rows, orig.PixelSpacing, orig.Rows)
			}
		}
	}
}

// TestDcm2pnmRendersWhatWasWritten renders files with dcmtk's dcm2pnm at
// the window stored in them (+Ww) and at its min-max window (+Wm), and
// compares with the written float image through the DICOM LINEAR VOI
// function computed here. The second case stores an image in small
// arbitrary units through DisplayScale.
func TestDcm2pnmRendersWhatWasWritten(t *testing.T) {
	tool := testutil.Tool(t, "dcm2pnm")
	mean, std, _ := phantom(1, 48, 64)
	unit := make([]float32, len(std))
	for i, v := range std {
		unit[i] = v * 1e-4 // a std map in small units
	}
	cases := []struct {
		name  string
		img   []float32
		scale float64
	}{{"mean", mean, 0}, {"small-unit std", unit, DisplayScale(unit)}}
	for _, c := range cases {
		dir := t.TempDir()
		study := Study{InstanceUID: "1.2.826.0.1.3680043.2.1143.1"}
		ref, err := WriteSeries(dir, study, OutputSeries{Kind: KindStd, Images: c.img, Slices: 1, Rows: 48, Cols: 64, Scale: c.scale}, WriteOptions{})
		if err != nil {
			t.Fatal(err)
		}
		scale := c.scale
		if scale == 0 {
			scale = 1
		}
		lo, hi := math.Inf(1), math.Inf(-1)
		for _, v := range c.img {
			lo, hi = math.Min(lo, float64(v)*scale), math.Max(hi, float64(v)*scale)
		}
		windows := []struct {
			args []string
			c, w float64
		}{
			{[]string{"+Ww", formatDS(ref.WindowCenter), formatDS(ref.WindowWidth)}, ref.WindowCenter, ref.WindowWidth},
			// dcmtk's min-max window covers [min, max] of the modality values.
			{[]string{"+Wm"}, (lo+hi)/2 + 0.5, hi - lo + 1},
		}
		for _, w := range windows {
			out := filepath.Join(dir, "render.png")
			args := append(append([]string{"--write-png"}, w.args...), ref.Files[0], out)
			if msg, err := exec.Command(tool, args...).CombinedOutput(); err != nil {
				t.Fatalf("dcm2pnm %v: %v\n%s", args, err, msg)
			}
			f, err := os.Open(out)
			if err != nil {
				t.Fatal(err)
			}
			img, err := png.Decode(f)
			f.Close()
			if err != nil {
				t.Fatal(err)
			}
			if b := img.Bounds(); b.Dx() != 64 || b.Dy() != 48 {
				t.Fatalf("rendered %v", b)
			}
			worst, off := 0.0, 0
			for i, v := range c.img {
				x := float64(v) * scale
				want := 255 * math.Max(0, math.Min(1, (x-(w.c-0.5))/(w.w-1)+0.5))
				got := float64(img.(*image.Gray).Pix[i/64*img.(*image.Gray).Stride+i%64])
				d := math.Abs(got - want)
				worst = math.Max(worst, d)
				if d > 1.5 {
					off++
				}
			}
			if worst > 2.5 || off > len(c.img)/200 {
				t.Errorf("%s %v: rendering differs by up to %.1f grey levels (%d pixels > 1.5)", c.name, w.args, worst, off)
			}
			t.Logf("%s, dcm2pnm %v: max difference %.2f grey levels, %d of %d pixels beyond 1.5", c.name, w.args, worst, off, len(c.img))
		}
	}
}

// TestQuantize checks the stored values reproduce the image to 1e-4 of its
// range (the requirement is 1e-3) over awkward ranges.
func TestQuantize(t *testing.T) {
	rng := rand.New(rand.NewSource(1))
	gen := func(n int, f func() float64) []float32 {
		v := make([]float32, n)
		for i := range v {
			v[i] = float32(f())
		}
		return v
	}
	cases := map[string][]float32{
		"unit":           gen(4096, rng.Float64),
		"tiny":           gen(4096, func() float64 { return 1e-7 * rng.Float64() }),
		"huge signed":    gen(4096, func() float64 { return 1e7 * (rng.Float64() - 0.5) }),
		"offset":         gen(4096, func() float64 { return 1000 + rng.Float64() }),
		"negative":       gen(4096, func() float64 { return -5 - rng.Float64() }),
		"constant zero":  make([]float32, 16),
		"constant":       gen(16, func() float64 { return 7.25 }),
		"constant minus": gen(16, func() float64 { return -3 }),
		"sparse":         gen(4096, func() float64 { return math.Pow(rng.Float64(), 8) * 500 }),
	}
	for name, img := range cases {
		dst := make([]int16, len(img))
		q, err := quantize(dst, img, 1)
		if err != nil {
			t.Fatal(err)
		}
		if len(q.slopeS) > 16 || len(q.icptS) > 16 || len(q.center) > 16 || len(q.width) > 16 {
			t.Errorf("%s: DS too long: %q %q %q %q", name, q.slopeS, q.icptS, q.center, q.width)
		}
		if parseDS(q.width) < 1 {
			t.Errorf("%s: window width %s < 1", name, q.width)
		}
		back := make([]float32, len(img))
		for i, s := range dst {
			back[i] = float32(float64(s)*parseDS(q.slopeS) + parseDS(q.icptS))
		}
		checkQuantised(t, name, back, img, q.slope)
	}
}

func TestUIDs(t *testing.T) {
	seen := map[string]bool{}
	re := regexp.MustCompile(`^2\.25\.[1-9][0-9]*$`)
	for i := 0; i < 2000; i++ {
		u, err := NewUID("")
		if err != nil || !re.MatchString(u) || validUID(u) != nil || seen[u] {
			t.Fatalf("NewUID: %q %v", u, err)
		}
		seen[u] = true
	}
	u, err := NewUID("1.2.826.0.1.3680043.10.999")
	if err != nil || !strings.HasPrefix(u, "1.2.826.0.1.3680043.10.999.") || len(u) > 64 || validUID(u) != nil {
		t.Errorf("rooted UID %q: %v", u, err)
	}
	for _, bad := range []string{"1.02.3", "1..2", "1.2.a", strings.Repeat("1.", 30) + "1"} {
		if _, err := NewUID(bad); err == nil {
			t.Errorf("root %q accepted", bad)
		}
	}
	if validUID(implementationClassUID) != nil {
		t.Error("implementation class UID invalid")
	}
}

func TestFormatDS(t *testing.T) {
	rng := rand.New(rand.NewSource(2))
	for i := 0; i < 10000; i++ {
		v := (rng.Float64() - 0.5) * math.Pow(10, float64(rng.Intn(40)-20))
		s := formatDS(v)
		if len(s) > 16 || !regexp.MustCompile(`^[-+]?([0-9]+\.?[0-9]*|\.[0-9]+)([eE][-+]?[0-9]+)?$`).MatchString(s) {
			t.Fatalf("formatDS(%g) = %q", v, s)
		}
		if math.Abs(parseDS(s)-v) > 1e-9*math.Abs(v) {
			t.Fatalf("formatDS(%g) = %q reads back as %g", v, s, parseDS(s))
		}
	}
}

func TestClean(t *testing.T) {
	cases := []struct{ vr, in, want string }{
		{"CS", "hfs", "HFS"},
		{"CS", "a-b.c", "A_B_C"},
		{"DA", "2024-01-02", ""},
		{"DA", "20240102", "20240102"},
		{"TM", "101530.25", "101530.25"},
		{"TM", "25:00", ""},
		{"PN", `Doe\Jane`, "DoeJane"},
		{"SH", "0123456789abcdefXYZ", "0123456789abcdef"},
		{"IS", " 12 ", "12"},
		{"DS", "3.0", "3"},
		{"DS", "NaN", ""},
		{"LO", "a\x00b\x1bc", "abc"},
	}
	for _, c := range cases {
		if got := clean(c.vr, c.in); got != c.want {
			t.Errorf("clean(%s, %q) = %q, want %q", c.vr, c.in, got, c.want)
		}
	}
}

func TestWriteRejects(t *testing.T) {
	ok := OutputSeries{Kind: KindMean, Images: make([]float32, 4), Slices: 1, Rows: 2, Cols: 2}
	study := Study{InstanceUID: "1.2.3"}
	bad := map[string]func(*OutputSeries, *Study){
		"kind":      func(s *OutputSeries, _ *Study) { s.Kind = "median" },
		"shape":     func(s *OutputSeries, _ *Study) { s.Rows = 3 },
		"NaN":       func(s *OutputSeries, _ *Study) { s.Images = []float32{0, float32(math.NaN()), 0, 0} },
		"Inf":       func(s *OutputSeries, _ *Study) { s.Images = []float32{0, float32(math.Inf(1)), 0, 0} },
		"geometry":  func(s *OutputSeries, _ *Study) { s.Geometry = make([]SliceGeometry, 2) },
		"no study":  func(_ *OutputSeries, st *Study) { st.InstanceUID = "" },
		"bad study": func(_ *OutputSeries, st *Study) { st.InstanceUID = "1.02" },
		"scale":     func(s *OutputSeries, _ *Study) { s.Scale = -1 },
		"NaN position": func(s *OutputSeries, _ *Study) {
			s.Geometry = []SliceGeometry{{Position: [3]float64{math.NaN()}, PixelSpacing: [2]float64{1, 1}}}
		},
		"zero spacing": func(s *OutputSeries, _ *Study) { s.Geometry = []SliceGeometry{{}} },
	}
	for name, mutate := range bad {
		s, st := ok, study
		mutate(&s, &st)
		dir := t.TempDir()
		if _, err := WriteSeries(dir, st, s, WriteOptions{}); err == nil {
			t.Errorf("%s: accepted", name)
		}
		if ents, _ := os.ReadDir(dir); len(ents) != 0 {
			t.Errorf("%s: left %d entries behind", name, len(ents))
		}
	}
	if _, err := WriteSeries(t.TempDir(), study, ok, WriteOptions{}); err != nil {
		t.Fatalf("valid series refused: %v", err)
	}
}

// TestAtomicSeries: a failing fill leaves nothing; a reader scanning the
// folder while series are written only ever sees whole series.
func TestAtomicSeries(t *testing.T) {
	dir := t.TempDir()
	errBoom := errors.New("boom")
	err := writeDirAtomic(dir, "x", func(tmp string) error {
		os.WriteFile(filepath.Join(tmp, "IM0001.dcm"), []byte("half"), 0o644)
		return errBoom
	})
	if !errors.Is(err, errBoom) {
		t.Fatalf("error %v", err)
	}
	if ents, _ := os.ReadDir(dir); len(ents) != 0 {
		t.Fatalf("failed write left %v", ents)
	}
	if err := os.Mkdir(filepath.Join(dir, "taken"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := writeDirAtomic(dir, "taken", func(string) error { return nil }); err == nil {
		t.Fatal("overwrote an existing folder")
	}
	os.Remove(filepath.Join(dir, "taken"))

	const slices, series = 6, 12
	img := make([]float32, slices*16*16)
	study := Study{InstanceUID: "1.2.3.4"}
	var done atomic.Bool
	var wg sync.WaitGroup
	var scans, seen atomic.Int64
	wg.Add(1)
	go func() {
		defer wg.Done()
		for !done.Load() {
			studies, _ := ReadOptions{SkipPixels: true, Workers: 1}.ReadStudies(dir)
			scans.Add(1)
			for _, st := range studies {
				for _, se := range st.Series {
					seen.Add(1)
					if len(se.Instances) != slices {
						t.Errorf("reader saw series %s with %d of %d instances", se.InstanceUID, len(se.Instances), slices)
					}
				}
			}
		}
	}()
	for i := 0; i < series; i++ {
		if _, err := WriteSeries(dir, study, OutputSeries{Kind: KindMean, Images: img, Slices: slices, Rows: 16, Cols: 16}, WriteOptions{}); err != nil {
			t.Error(err)
		}
	}
	done.Store(true)
	wg.Wait()
	t.Logf("%d scans of the folder saw %d series, all whole", scans.Load(), seen.Load())
}

func TestRefitKeepsFieldOfView(t *testing.T) {
	g := SliceGeometry{Position: [3]float64{-100, -80, 12}, Orientation: [6]float64{0, 1, 0, 0, 0, -1}, PixelSpacing: [2]float64{2, 1.5}, SliceThickness: 3}
	out := refit(g, 100, 120, 200, 60)
	want := SliceGeometry{
		// Row direction is +y, column direction is −z: the first pixel's
		// centre moves by half the change in pixel size along each.
		Position:       [3]float64{-100, -80 - 0.75 + 1.5, 12 + 1 - 0.5},
		Orientation:    g.Orientation,
		PixelSpacing:   [2]float64{1, 3},
		SliceThickness: 3,
	}
	for k := 0; k < 3; k++ {
		if math.Abs(out.Position[k]-want.Position[k]) > 1e-12 {
			t.Fatalf("refit %+v, want %+v", out, want)
		}
	}
	if out.PixelSpacing != want.PixelSpacing || out.Orientation != want.Orientation {
		t.Fatalf("refit %+v, want %+v", out, want)
	}
}

// A description suffix survives a long description (LO holds 64
// characters); comments go to each slice's ImageComments, one for all or one
// per slice.
func TestDescriptionSuffixAndComments(t *testing.T) {
	s := OutputSeries{Method: "CG-SENSE", Kind: KindMean, Description: strings.Repeat("x", 80), DescriptionSuffix: " [QC: check]"}
	d := s.description()
	if len([]rune(d)) > 64 || !strings.HasSuffix(d, " [QC: check]") {
		t.Errorf("description %q (%d characters)", d, len([]rune(d)))
	}
	s.Description = ""
	if d := s.description(); d != "kspaced CG-SENSE mean [QC: check]" {
		t.Errorf("default description with suffix %q", d)
	}
	s.Comments = []string{"QC: motion suspected"}
	if s.comment(0) != "QC: motion suspected" || s.comment(5) != "QC: motion suspected" {
		t.Error("one comment is for all slices")
	}
	s.Comments = []string{"", "QC: a\\b"}
	if s.comment(0) != "" || s.comment(1) != "QC: ab" || s.comment(2) != "" {
		t.Errorf("per-slice comments %q %q %q", s.comment(0), s.comment(1), s.comment(2))
	}
}
