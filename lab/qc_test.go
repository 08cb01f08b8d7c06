package lab

import (
	"context"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"

	"github.com/kspaced/kspaced/configs"
	"github.com/kspaced/kspaced/internal/testutil"
	"github.com/kspaced/kspaced/qc"
)

const priorDir = "../train/default-prior"

// shippedCalibration is what kspaced flags with: the embedded classical
// calibration and each prior's sidecar.
func shippedCalibration(t *testing.T, priors []string) map[string]*qc.Calibration {
	cal := map[string]*qc.Calibration{"": qc.Classical()}
	for _, p := range priors {
		c, err := qc.LoadSidecar(p)
		if err != nil || c == nil {
			t.Fatalf("sidecar of %s: %v", p, err)
		}
		cal[filepath.Base(p)] = c
	}
	return cal
}

// TestQCEvidence runs a small version of the evaluation of docs/bench/qc.md
// (one held-out slice per volume at 4×, each turned into every failure
// class; typicality under lap 1) with the shipped calibration, and asserts
// the flag rates (checkQCClaims). KSPACED_QC_EVIDENCE=1 runs the full one
// instead: the 16 evaluation slices at 4× and 8× (32 scans per class), the
// priors of train/default-prior named in KSPACED_QC_PRIORS (comma-separated
// file names, the first flags; default lap-01 and lap-00), calibrated anew on the 16 calibration slices (32 scans); it prints the table and writes the ROC
// curve to KSPACED_QC_ROC (if set), and with KSPACED_QC_WRITE_CALIBRATION=1
// writes qc/classical.qc.json and the priors' sidecars (=priors: the sidecars
// only, as scripts/ship-prior.sh does). KSPACED_QC_METHOD
// evaluates another classical method (calibrated anew), KSPACED_QC_PRIORS=none
// leaves typicality out. KSPACED_QC_FROM
// reuses a run saved with KSPACED_QC_SAVE (KSPACED_QC_RECALIBRATE=1 fits the
// calibration anew on the calibration slices first); KSPACED_QC_ARCHIVE (the
// default-prior archive folder) adds its test/m128-* files as in-distribution
// scans.
func TestQCEvidence(t *testing.T) {
	testutil.File(t, simulate_ch2)
	testutil.File(t, filepath.Join(NonBrainDir, "camera.png"))
	full := os.Getenv("KSPACED_QC_EVIDENCE") == "1"
	if testing.Short() && !full {
		t.Skip("a minute or two on two cores")
	}
	opt := QCOptions{Recon: classicalRecon(), Log: os.Stderr}
	priorNames := []string{"lap-01.safetensors", "lap-00.safetensors"} // the first flags
	if full {
		if v := os.Getenv("KSPACED_QC_PRIORS"); v == "none" {
			priorNames = nil
		} else if v != "" {
			priorNames = strings.Split(v, ",")
		}
		if m := os.Getenv("KSPACED_QC_METHOD"); m != "" {
			opt.Recon.Method = m
		}
		for _, name := range priorNames {
			opt.Priors = append(opt.Priors, priorDir+"/"+name)
		}
	} else {
		opt.PerVolume, opt.Accelerations = 1, []float64{4}
		opt.Priors = []string{priorDir + "/lap-01.safetensors"}
		opt.Calibration = shippedCalibration(t, opt.Priors)
	}
	var ev *QCEvaluation
	var err error
	if from := os.Getenv("KSPACED_QC_FROM"); full && from != "" {
		// A saved full run (KSPACED_QC_SAVE), flagged again with today's rules.
		if ev, err = LoadQCEvaluation(from); err == nil {
			if os.Getenv("KSPACED_QC_RECALIBRATE") == "1" {
				err = ev.Recalibrate(context.Background(), opt)
			} else {
				ev.Reapply(filepath.Base(opt.Priors[0]))
			}
		}
	} else {
		ev, err = QCEvidence(context.Background(), opt)
	}
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("\n%s", ev.Markdown())
	for _, c := range ev.Cases {
		if f := QCScore(c.Result) > 1; f != c.Result.Flagged() {
			t.Errorf("%s %s: QCScore %.3f but flagged %v", c.Class, c.Name, QCScore(c.Result), c.Result.Flagged())
		}
	}
	if err := checkQCClaims(ev.Table()); err != nil {
		t.Error(err)
	}
	if !full {
		return
	}
	if dir := os.Getenv("KSPACED_QC_ARCHIVE"); dir != "" {
		aopt := opt
		aopt.Calibration = ev.Calibration
		cases, err := QCArchive(context.Background(), aopt, []string{filepath.Join(dir, "test/m128-4x"), filepath.Join(dir, "test/m128-8x")})
		if err != nil {
			t.Fatal(err)
		}
		ev.Cases = append(ev.Cases, cases...)
		t.Logf("with the archive's files:\n%s", ev.Markdown())
	}
	if p := os.Getenv("KSPACED_QC_ROC"); p != "" {
		if err := ev.WriteROCPNG(p); err != nil {
			t.Fatal(err)
		}
	}
	if p := os.Getenv("KSPACED_QC_SAVE"); p != "" {
		if err := ev.Save(p); err != nil {
			t.Fatal(err)
		}
	}
	if w := os.Getenv("KSPACED_QC_WRITE_CALIBRATION"); w == "1" || w == "priors" {
		if w == "1" {
			if err := ev.Calibration[""].Save("../qc/classical.qc.json"); err != nil {
				t.Fatal(err)
			}
		}
		for _, name := range priorNames {
			if err := ev.Calibration[name].Save(qc.SidecarPath(filepath.Join(priorDir, name))); err != nil {
				t.Fatal(err)
			}
		}
		// No sidecar for best.safetensors: retrain rewrites it when a later
		// lap wins, and the calibration would then describe another lap.
	}
}

const simulate_ch2 = "/usr/share/mricron/templates/ch2.nii.gz"

// TestQCClaims checks checkQCClaims on made-up tables: the measured table
// passes, and so do small runs that are merely unlucky; clear shortfalls fail.
func TestQCClaims(t *testing.T) {
	table := func(n int, flagged map[string]int) []QCRow {
		var rows []QCRow
		for _, c := range QCClasses {
			f, ok := flagged[c]
			if !ok {
				f = n
				if inDistribution(c) {
					f = 0
				}
			}
			rows = append(rows, QCRow{Class: c, N: n, Flagged: f})
		}
		return rows
	}
	for name, rows := range map[string][]QCRow{
		"measured":          table(32, map[string]int{ClassInDistSNR: 2, ClassMotion: 31, ClassPhantom: 30}),
		"small and unlucky": table(2, map[string]int{ClassInDist: 1, ClassMotion: 1, ClassCoils: 1, ClassPhantom: 1}),
	} {
		if err := checkQCClaims(rows); err != nil {
			t.Errorf("%s: refused: %v", name, err)
		}
	}
	for name, rows := range map[string][]QCRow{
		"in-distribution 6 of 32": table(32, map[string]int{ClassInDist: 6}),
		"archive 6 of 32":         table(32, map[string]int{ClassArchive: 6}),
		"motion 24 of 32":         table(32, map[string]int{ClassMotion: 24}),
		"phantom 0 of 32":         table(32, map[string]int{ClassPhantom: 0}),
		"phantom 0 of 2":          table(2, map[string]int{ClassPhantom: 0}),
		"coil maps 25 of 32":      table(32, map[string]int{ClassCoils: 25}),
		"non-brain 0 of 2":        table(2, map[string]int{ClassNonBrain: 0}),
		"class missing":           table(32, nil)[:5],
		"empty":                   nil,
	} {
		if checkQCClaims(rows) == nil {
			t.Errorf("%s: accepted", name)
		}
	}
	if math.IsNaN(QCRow{}.Rate()) {
		t.Error("rate of an empty row")
	}
}

// TestQCDevelopment prints, for cases made from the calibration slices,
// the line orders behind qc.MotionOrder and the line-motion and
// edge-sparsity measures with their AUC against the in-distribution scans
// (KSPACED_QC_DEVELOPMENT=1; a few minutes).
func TestQCDevelopment(t *testing.T) {
	if os.Getenv("KSPACED_QC_DEVELOPMENT") != "1" {
		t.Skip("KSPACED_QC_DEVELOPMENT=1 prints the measures of cases made from the calibration slices")
	}
	cases, err := DevelopmentCases(context.Background(), QCOptions{Recon: classicalRecon()})
	if err != nil {
		t.Fatal(err)
	}
	measures := map[string]func(*qc.Result) float64{
		"line order":  func(r *qc.Result) float64 { return r.DataConsistency.LineOrder },
		"line motion": func(r *qc.Result) float64 { return r.LineMotion.Explained },
		"edges":       func(r *qc.Result) float64 { return r.EdgeSparsity.Score },
	}
	for _, name := range []string{"line order", "line motion", "edges"} {
		by := map[string][]float64{}
		for _, c := range cases {
			by[c.Class] = append(by[c.Class], measures[name](c.Result))
		}
		for _, cl := range []string{ClassInDist, ClassMotion, ClassCoils, ClassPhantom} {
			v := by[cl]
			sort.Float64s(v)
			auc := "—"
			if cl != ClassInDist {
				auc = fmt.Sprintf("%.3f", roc(cl, by[ClassInDist], v).AUC)
			}
			t.Logf("%s, %s (AUC vs in-distribution %s): %.3g", name, cl, auc, v)
		}
	}
}

// TestQCMethodCalibration calibrates zero-filled and L1-wavelet data
// consistency, line motion and edge sparsity (KSPACED_QC_METHODS=1; minutes) and, with
// KSPACED_QC_WRITE_CALIBRATION=1, adds them to qc/classical.qc.json. It
// fails if a method flags more in-distribution scans than the 5 % goal
// allows (the same binomial test as checkQCClaims).
func TestQCMethodCalibration(t *testing.T) {
	if os.Getenv("KSPACED_QC_METHODS") != "1" {
		t.Skip("KSPACED_QC_METHODS=1 calibrates zero-filled and l1-wavelet data consistency")
	}
	opt := QCOptions{Recon: classicalRecon(), Log: os.Stderr}
	dists, flagged, err := MethodCalibration(context.Background(), opt, []string{"zero-filled", "l1-wavelet"})
	if err != nil {
		t.Fatal(err)
	}
	for m, f := range flagged {
		if err := checkQCClaims([]QCRow{{Class: ClassInDist, N: f[1], Flagged: f[0]}}); err != nil && !strings.Contains(err.Error(), "missing") {
			t.Errorf("%s: %v", m, err)
		}
	}
	if os.Getenv("KSPACED_QC_WRITE_CALIBRATION") == "1" {
		c := qc.Classical()
		for _, d := range dists {
			c = c.Merge(d)
		}
		if err := c.Save("../qc/classical.qc.json"); err != nil {
			t.Fatal(err)
		}
	}
}

// classicalRecon is the default recon section with CG-SENSE, the classical
// reconstruction the QC evidence and its shipped calibrations are of
// (KSPACED_QC_METHOD picks another).
func classicalRecon() configs.Recon {
	rc := configs.Default().Recon
	rc.Method = "cg-sense"
	return rc
}
