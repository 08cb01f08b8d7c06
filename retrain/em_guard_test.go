package retrain

import (
	"bytes"
	"context"
	"encoding/json"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/kspaced/kspaced/priors"
)

// TestEMGuardCatchesDivergedMStep injects an absurd learning rate into lap
// 2's first M-step: the guard must reject that attempt, redo the M-step from
// lap 1's weights at a lower rate, record both attempts in laps.json, and
// hand over a lap-2 prior that is not the diverged one.
func TestEMGuardCatchesDivergedMStep(t *testing.T) {
	if testing.Short() {
		t.Skip("trains a network")
	}
	obs := emObservations(t, 52, 16, 2, 3, 0.02, 7)
	train, val := obs[:44], obs[44:]
	dir := t.TempDir()
	var log bytes.Buffer
	opt := emTestOptions(dir, 2)
	opt.Log = &log
	opt.EvalSteps = 12 // validation on its own grid, the E-step on 16
	opt.lrOverride = func(lap, attempt int, lr float64) float64 {
		if lap == 2 && attempt == 0 {
			return 50 // Adam moves every weight by ~50 per step
		}
		return lr
	}
	recs, err := RunEM(context.Background(), train, val, opt)
	if err != nil {
		t.Fatalf("%v\n%s", err, log.String())
	}
	t.Logf("\n%s", log.String())
	r1, r2 := recs[1], recs[2]
	if len(r1.Attempts) != 1 || r1.Attempts[0].Reason != "" {
		t.Errorf("lap 1 attempts %+v, want one accepted", r1.Attempts)
	}
	if len(r2.Attempts) != 2 || r2.Attempts[0].Reason == "" || r2.Attempts[1].Reason != "" {
		t.Fatalf("lap 2 attempts %+v, want one rejected then one kept", r2.Attempts)
	}
	if r2.Attempts[0].LR != 50 || math.Abs(r2.LR-2e-3*0.3) > 1e-12 || r2.Attempts[1].LR != r2.LR {
		t.Errorf("learning rates: attempts %+v, kept %g (want 50 then %g)", r2.Attempts, r2.LR, 2e-3*0.3)
	}
	if !strings.Contains(log.String(), "attempt 1 rejected") {
		t.Errorf("log does not report the rejected attempt")
	}
	// The kept lap-2 prior is a sound one: near lap 1 on validation, far
	// from what the diverged attempt scored.
	if !(r2.Validation.PSNR > r1.Validation.PSNR-1) || r2.GuardWarning != "" {
		t.Errorf("lap 2 PSNR %.2f dB (lap 1 %.2f dB), warning %q", r2.Validation.PSNR, r1.Validation.PSNR, r2.GuardWarning)
	}
	if a := r2.Attempts[0]; !(a.Loss > 2*r1.MStepLoss) && !(a.PSNR < r2.Validation.PSNR-3) && !strings.Contains(a.Reason, "diverged") {
		t.Errorf("rejected attempt %+v does not look diverged", a)
	}
	// laps.json says the same, and a best lap is marked and copied.
	raw, err := os.ReadFile(filepath.Join(dir, "laps.json"))
	if err != nil {
		t.Fatal(err)
	}
	var onDisk []LapRecord
	if err := json.Unmarshal(raw, &onDisk); err != nil {
		t.Fatal(err)
	}
	if len(onDisk) != 3 || len(onDisk[2].Attempts) != 2 || onDisk[2].Attempts[0].Reason != r2.Attempts[0].Reason {
		t.Fatalf("laps.json: %s", raw)
	}
	best := -1
	for i, r := range onDisk {
		if r.Best {
			if best >= 0 {
				t.Fatalf("laps %d and %d both marked best", best, i)
			}
			best = i
		}
	}
	if best < 0 {
		t.Fatal("no lap marked best")
	}
	for i, r := range onDisk {
		if r.Validation.PSNR > onDisk[best].Validation.PSNR {
			t.Errorf("lap %d (%.2f dB) beats the marked best lap %d (%.2f dB)", i, r.Validation.PSNR, best, onDisk[best].Validation.PSNR)
		}
	}
	a, _ := os.ReadFile(filepath.Join(dir, BestCheckpoint))
	b, _ := os.ReadFile(filepath.Join(dir, LapCheckpoint(best)))
	if len(a) == 0 || !bytes.Equal(a, b) {
		t.Errorf("%s is not lap %d's checkpoint", BestCheckpoint, best)
	}
	if _, err := os.Stat(filepath.Join(dir, guardFile(2))); err == nil {
		t.Error("guard state left behind after the lap finished")
	}
	// Every lap keeps its validation scans' PSNRs, and the log pairs each
	// network lap with the one before.
	for i, r := range onDisk {
		if len(r.ValidationPSNR) != len(val) {
			t.Errorf("lap %d: %d validation PSNRs in laps.json, want %d", i, len(r.ValidationPSNR), len(val))
		}
		if r.EvalSteps != 12 || (i > 0 && r.EStepSteps != 16) {
			t.Errorf("lap %d: validation on %d steps, E-step on %d; want 12 and 16", i, r.EvalSteps, r.EStepSteps)
		}
	}
	if !strings.Contains(log.String(), "lap 2 validation, paired: against the lap before (lap 1)") {
		t.Errorf("no paired comparison in the log:\n%s", log.String())
	}
}

// TestLapAttemptsJSONWithoutTruth: attempts of a run without ground truth
// (PSNR NaN) and of a diverged M-step (loss NaN) still write as JSON.
func TestLapAttemptsJSONWithoutTruth(t *testing.T) {
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, LapCheckpoint(0)), []byte("x"), 0o644); err != nil {
		t.Fatal(err)
	}
	r := LapRecord{Lap: 0, Kind: priors.KindGaussian, Checkpoint: LapCheckpoint(0), Validation: ScoreSummary{N: 2, DataConsistency: 3, PSNR: math.NaN()},
		Attempts: []LapAttempt{{LR: 1e-3, Loss: finiteOr0(math.NaN()), PSNR: finiteOr0(math.NaN()), DataConsistency: 3}}}
	if err := writeLaps(dir, []LapRecord{r}); err != nil {
		t.Fatal(err)
	}
	back, err := ReadLaps(dir)
	if err != nil || len(back) != 1 || back[0].Attempts[0].DataConsistency != 3 {
		t.Fatalf("%v %+v", err, back)
	}
}

// TestGuardJumped checks the jump rules on hand-made records.
func TestGuardJumped(t *testing.T) {
	g := GuardOptions{}
	g.defaults()
	val := func(dc, psnr float64) ScoreSummary {
		return ScoreSummary{N: 4, DataConsistency: dc, WithTruth: 4, PSNR: psnr}
	}
	gauss := LapRecord{Lap: 0, Kind: priors.KindGaussian, Validation: val(0.1, 25)}
	net1 := LapRecord{Lap: 1, Kind: priors.KindUNet, MStepLoss: 0.40, Validation: val(4.5, 20)}
	for _, c := range []struct {
		name string
		rec  LapRecord
		prev []LapRecord
		want string // substring of the reason; "" = accepted
	}{
		{"first network lap is not judged against the Gaussian", LapRecord{Kind: priors.KindUNet, MStepLoss: 9, Validation: val(40, 9)}, []LapRecord{gauss}, ""},
		{"steady lap", LapRecord{Kind: priors.KindUNet, MStepLoss: 0.45, Validation: val(4.6, 20.5)}, []LapRecord{gauss, net1}, ""},
		{"loss jump (docs/bench/em.md lap 2)", LapRecord{Kind: priors.KindUNet, MStepLoss: 4.61, Validation: val(4.6, 20)}, []LapRecord{gauss, net1}, "M-step loss"},
		{"data consistency jump", LapRecord{Kind: priors.KindUNet, MStepLoss: 0.5, Validation: val(41, 20)}, []LapRecord{gauss, net1}, "data consistency"},
		{"small data consistency rise near 1 is not a jump", LapRecord{Kind: priors.KindUNet, MStepLoss: 0.4, Validation: val(0.9, 20)}, []LapRecord{gauss, {Lap: 1, Kind: priors.KindUNet, MStepLoss: 0.4, Validation: val(0.3, 20)}}, ""},
		{"PSNR drop", LapRecord{Kind: priors.KindUNet, MStepLoss: 0.4, Validation: val(4.5, 15.28)}, []LapRecord{gauss, net1}, "PSNR"},
		{"NaN loss", LapRecord{Kind: priors.KindUNet, MStepLoss: math.NaN()}, []LapRecord{gauss, net1}, "loss NaN"},
	} {
		got := jumped(c.rec, c.prev, g)
		if (c.want == "") != (got == "") || !strings.Contains(got, c.want) {
			t.Errorf("%s: reason %q, want %q", c.name, got, c.want)
		}
	}
}

// TestMarkBestWarnsWhenWorseThanStart: a run whose newest lap scores below
// lap 0 says so, and best.safetensors is lap 0's.
func TestMarkBestWarnsWhenWorseThanStart(t *testing.T) {
	dir := t.TempDir()
	recs := []LapRecord{
		{Lap: 0, Kind: priors.KindGaussian, Checkpoint: LapCheckpoint(0), Validation: ScoreSummary{N: 3, WithTruth: 3, PSNR: 25.8, DataConsistency: 2}},
		{Lap: 1, Kind: priors.KindUNet, Checkpoint: LapCheckpoint(1), Validation: ScoreSummary{N: 3, WithTruth: 3, PSNR: 8.8, DataConsistency: 9}},
		{Lap: 2, Kind: priors.KindUNet, Checkpoint: LapCheckpoint(2), Validation: ScoreSummary{N: 3, WithTruth: 3, PSNR: 14.1, DataConsistency: 5}},
	}
	for k := range recs {
		if err := os.WriteFile(filepath.Join(dir, LapCheckpoint(k)), []byte{byte('a' + k)}, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	var log bytes.Buffer
	best, err := markBest(dir, recs, &log)
	if err != nil || best != 0 || !recs[0].Best || recs[1].Best || recs[2].Best {
		t.Fatalf("best %d, err %v, marks %v %v %v", best, err, recs[0].Best, recs[1].Best, recs[2].Best)
	}
	if b, _ := os.ReadFile(filepath.Join(dir, BestCheckpoint)); string(b) != "a" {
		t.Errorf("best.safetensors holds %q, want lap 0's", b)
	}
	if !strings.Contains(log.String(), "WARNING") || !strings.Contains(recs[2].WorseThanStart, "14.10 dB against 25.80 dB") {
		t.Errorf("log %q, record warning %q", log.String(), recs[2].WorseThanStart)
	}
	// Without ground truth the data consistency decides (lower is better).
	for i := range recs {
		recs[i].Validation.WithTruth = 0
	}
	recs[2].Validation.DataConsistency = 1.5
	log.Reset()
	if best, err = markBest(dir, recs, &log); err != nil || best != 2 || recs[2].WorseThanStart != "" || log.Len() != 0 {
		t.Fatalf("by data consistency: best %d, err %v, warning %q, log %q", best, err, recs[2].WorseThanStart, log.String())
	}
}

// compareLaps pairs the newest lap's validation scans with the lap before
// and the best lap: differences worked out by hand. Lap 3 against lap 2:
// +0.2, −0.1, +0.5 (mean +0.2, sd 0.3, se 0.3/√3 = 0.173); against the best,
// lap 1: −0.3, −0.6, 0 (mean −0.3, sd 0.3, se 0.173).
func TestCompareLapsPaired(t *testing.T) {
	recs := []LapRecord{
		{Lap: 0, ValidationPSNR: []float64{18, 17, 19}},
		{Lap: 1, Best: true, ValidationPSNR: []float64{21, 20, 22}},
		{Lap: 2, ValidationPSNR: []float64{20.5, 19.5, 21.5}},
		{Lap: 3, ValidationPSNR: []float64{20.7, 19.4, 22}},
	}
	m, se, better, n, ok := pairedPSNR(recs[2], recs[3])
	if !ok || n != 3 || better != 2 || math.Abs(m-0.2) > 1e-12 || math.Abs(se-0.3/math.Sqrt(3)) > 1e-12 {
		t.Fatalf("pairedPSNR = %v ± %v, %d of %d better, ok %v", m, se, better, n, ok)
	}
	got := compareLaps(recs)
	want := "lap 3 validation, paired: against the lap before (lap 2) +0.20 ± 0.17 dB, better on 2 of 3 scans; against the best (lap 1) -0.30 ± 0.17 dB, better on 0 of 3 scans"
	if got != want {
		t.Errorf("compareLaps:\n got %q\nwant %q", got, want)
	}
	// The best lap just before: said once. Scans that differ (or none): nothing.
	recs[2].Best, recs[1].Best = true, false
	if got := compareLaps(recs); strings.Count(got, "lap 2") != 1 || strings.Contains(got, "best") {
		t.Errorf("best lap = the lap before: %q", got)
	}
	recs[2].EvalSteps = 32
	if got := compareLaps(recs); got != "" {
		t.Errorf("laps validated with different sampler steps compared: %q", got)
	}
	recs[2].EvalSteps = 0
	recs[2].ValidationPSNR = recs[2].ValidationPSNR[:2]
	if got := compareLaps(recs); got != "" {
		t.Errorf("laps scored on different scans compared: %q", got)
	}
}
