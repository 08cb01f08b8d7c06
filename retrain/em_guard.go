package retrain

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"path/filepath"
	"strings"

	"github.com/kspaced/kspaced/internal/safefile"
	"github.com/kspaced/kspaced/priors"
)

// The M-step guard. An M-step can diverge (docs/bench/em.md: one lap's loss
// went from 0.40 to 4.61 and validation PSNR fell 5 dB), and EM then spends
// laps recovering, or hands over a prior worse than the one it started from.
// So each network lap is checked against the lap before it; a lap whose
// training loss or validation score jumps is thrown away and its M-step
// redone from the previous lap's weights (same E-step samples) at a lower
// learning rate. Every attempt is recorded in laps.json. Independently, the
// best lap so far is copied to best.safetensors, and a run whose newest lap
// scores worse than lap 0 says so on the log and in laps.json.

// GuardOptions configure the M-step guard. Zero values take the defaults.
type GuardOptions struct {
	Disabled bool
	// Retries is how many times a jumped lap is redone (2); after that the
	// last attempt is kept and flagged.
	Retries int
	// LRFactor multiplies the learning rate for each retry (0.3).
	LRFactor float64
	// LossJump: a final M-step loss above LossJump × the previous network
	// lap's is a jump (2).
	LossJump float64
	// DCJump: validation data consistency above DCJump × the previous lap's
	// (and at least 1 above it) is a jump (2).
	DCJump float64
	// PSNRDrop: with ground truth, a validation PSNR more than PSNRDrop dB
	// below the previous lap's is a jump (3).
	PSNRDrop float64
}

func (g *GuardOptions) defaults() {
	if g.Retries == 0 {
		g.Retries = 2
	}
	if g.LRFactor == 0 {
		g.LRFactor = 0.3
	}
	if g.LossJump == 0 {
		g.LossJump = 2
	}
	if g.DCJump == 0 {
		g.DCJump = 2
	}
	if g.PSNRDrop == 0 {
		g.PSNRDrop = 3
	}
}

// LapAttempt is one try at a network lap's M-step.
type LapAttempt struct {
	LR              float64 `json:"learning_rate"`
	Loss            float64 `json:"mstep_loss,omitempty"`
	DataConsistency float64 `json:"validation_data_consistency,omitempty"`
	PSNR            float64 `json:"validation_psnr,omitempty"`
	// Reason is why the attempt was rejected ("" for the kept one).
	Reason string `json:"rejected_because,omitempty"`
}

// BestCheckpoint is the file name of the best lap's prior in a run folder.
const BestCheckpoint = "best.safetensors"

func guardFile(k int) string { return fmt.Sprintf("lap-%02d.guard.json", k) }

// guardState is what survives a kill between attempts.
type guardState struct {
	LR       float64      `json:"learning_rate"`
	Attempts []LapAttempt `json:"attempts"`
}

// guardedLap runs network lap k, redoing its M-step while it jumps against
// prev (the records of laps 0…k−1).
func guardedLap(ctx context.Context, k int, train, val []Observation, opt EMOptions, prev []LapRecord) (LapRecord, error) {
	g := opt.Guard
	if g.Disabled {
		return networkLap(ctx, k, train, val, opt)
	}
	g.defaults()
	lr := opt.Train.LR
	if lr == 0 {
		lr = 1e-3 // TrainOptions' default
	}
	gpath := filepath.Join(opt.Dir, guardFile(k))
	var st guardState
	if raw, err := os.ReadFile(gpath); err == nil && json.Unmarshal(raw, &st) == nil && st.LR > 0 {
		lr = st.LR
	}
	logf := func(format string, a ...any) {
		if opt.Log != nil {
			fmt.Fprintf(opt.Log, format+"\n", a...)
		}
	}
	for {
		o := opt
		o.Train.LR = lr
		if opt.lrOverride != nil {
			o.Train.LR = opt.lrOverride(k, len(st.Attempts), lr)
		}
		rec, err := networkLap(ctx, k, train, val, o)
		var reason string
		if err != nil {
			if ctx.Err() != nil || !isDivergence(err) {
				return rec, err
			}
			reason = "M-step diverged: " + err.Error()
		} else {
			reason = jumped(rec, prev, g)
		}
		// JSON has no NaN: scores that do not exist (no truth, a failed
		// M-step) are left out.
		st.Attempts = append(st.Attempts, LapAttempt{LR: o.Train.LR, Loss: finiteOr0(rec.MStepLoss),
			DataConsistency: finiteOr0(rec.Validation.DataConsistency), PSNR: finiteOr0(rec.Validation.PSNR), Reason: reason})
		if reason == "" || len(st.Attempts) > g.Retries {
			if err != nil {
				return rec, fmt.Errorf("%w (after %d attempts, learning rate down to %g)", err, len(st.Attempts), o.Train.LR)
			}
			if reason != "" {
				rec.GuardWarning = fmt.Sprintf("kept after %d attempts although %s", len(st.Attempts), reason)
				logf("WARNING: em lap %d: %s", k, rec.GuardWarning)
				st.Attempts[len(st.Attempts)-1].Reason = ""
			}
			rec.Attempts, rec.LR = st.Attempts, o.Train.LR
			_ = os.Remove(gpath)
			return rec, nil
		}
		logf("em lap %d: attempt %d rejected (%s); redoing the M-step from lap %d's weights at learning rate %.3g",
			k, len(st.Attempts), reason, k-1, lr*g.LRFactor)
		lr *= g.LRFactor
		st.LR = lr
		// The E-step samples stay; the M-step restarts from lap k−1.
		for _, f := range []string{trainFile(k), LapCheckpoint(k)} {
			if err := os.Remove(filepath.Join(opt.Dir, f)); err != nil && !errors.Is(err, os.ErrNotExist) {
				return rec, fmt.Errorf("em lap %d: guard: %w", k, err)
			}
		}
		if err := writeJSONAtomic(gpath, st); err != nil {
			return rec, fmt.Errorf("em lap %d: guard: %w", k, err)
		}
	}
}

// isDivergence tells a numerical blow-up of training (Train refuses a
// NaN or infinite loss) from other failures.
func isDivergence(err error) bool {
	s := err.Error()
	return strings.Contains(s, "train: loss is")
}

// jumped says why rec is a jump against the last network lap in prev, or
// "". The first network lap is not compared with the Gaussian lap 0: its
// exact posterior mean scores on another footing, and a first lap too short
// to learn is not what a lower learning rate cures (markBest reports it).
func jumped(rec LapRecord, prev []LapRecord, g GuardOptions) string {
	if math.IsNaN(rec.MStepLoss) || math.IsInf(rec.MStepLoss, 0) {
		return fmt.Sprintf("M-step loss %g", rec.MStepLoss)
	}
	var p *LapRecord
	for i := len(prev) - 1; i >= 0 && p == nil; i-- {
		if prev[i].Kind == priors.KindUNet {
			p = &prev[i]
		}
	}
	if p == nil {
		return ""
	}
	if p.MStepLoss > 0 && rec.MStepLoss > g.LossJump*p.MStepLoss {
		return fmt.Sprintf("M-step loss %.4g is more than %g× lap %d's %.4g", rec.MStepLoss, g.LossJump, p.Lap, p.MStepLoss)
	}
	pv, v := p.Validation, rec.Validation
	if v.N == 0 || pv.N == 0 {
		return ""
	}
	if !finite64(v.DataConsistency) {
		return fmt.Sprintf("validation data consistency %g", v.DataConsistency)
	}
	if v.DataConsistency > g.DCJump*pv.DataConsistency && v.DataConsistency > pv.DataConsistency+1 {
		return fmt.Sprintf("validation data consistency %.3g is more than %g× lap %d's %.3g", v.DataConsistency, g.DCJump, p.Lap, pv.DataConsistency)
	}
	if v.WithTruth > 0 && pv.WithTruth > 0 && v.PSNR < pv.PSNR-g.PSNRDrop {
		return fmt.Sprintf("validation PSNR %.2f dB is more than %g dB below lap %d's %.2f dB", v.PSNR, g.PSNRDrop, p.Lap, pv.PSNR)
	}
	return ""
}

// lapScore orders laps for best.safetensors: validation PSNR when every lap
// has ground truth, else data consistency (lower is better). Higher is better.
func lapScore(r LapRecord, byPSNR bool) float64 {
	v := r.Validation
	if v.N == 0 {
		return math.Inf(-1)
	}
	if byPSNR {
		return v.PSNR
	}
	return -v.DataConsistency
}

// markBest flags the best lap in recs, copies its checkpoint to
// best.safetensors, and warns (log and laps.json) when the newest lap
// scores worse than lap 0. It returns the best lap's index (−1: no
// validation data to judge by, nothing marked).
func markBest(dir string, recs []LapRecord, log io.Writer) (int, error) {
	byPSNR := true
	for _, r := range recs {
		if r.Validation.N == 0 {
			return -1, nil
		}
		if r.Validation.WithTruth == 0 {
			byPSNR = false
		}
	}
	best := 0
	for i, r := range recs {
		recs[i].Best = false
		if lapScore(r, byPSNR) > lapScore(recs[best], byPSNR) {
			best = i
		}
	}
	recs[best].Best = true
	if err := copyFileAtomic(filepath.Join(dir, BestCheckpoint), filepath.Join(dir, recs[best].Checkpoint)); err != nil {
		return best, fmt.Errorf("em: best lap: %w", err)
	}
	last := &recs[len(recs)-1]
	last.WorseThanStart = ""
	if len(recs) > 1 && lapScore(*last, byPSNR) < lapScore(recs[0], byPSNR) {
		what := fmt.Sprintf("data consistency %.3f against %.3f", last.Validation.DataConsistency, recs[0].Validation.DataConsistency)
		if byPSNR {
			what = fmt.Sprintf("PSNR %.2f dB against %.2f dB", last.Validation.PSNR, recs[0].Validation.PSNR)
		}
		last.WorseThanStart = fmt.Sprintf("lap %d scores worse on validation than lap 0 it started from (%s); the best lap is %d, copied to %s",
			last.Lap, what, best, BestCheckpoint)
		if log != nil {
			fmt.Fprintf(log, "WARNING: em: %s\n", last.WorseThanStart)
		}
	}
	return best, nil
}

func finite64(v float64) bool { return !math.IsNaN(v) && !math.IsInf(v, 0) }

func finiteOr0(v float64) float64 {
	if finite64(v) {
		return v
	}
	return 0
}

func copyFileAtomic(dst, src string) error {
	f, err := os.Open(src)
	if err != nil {
		return err
	}
	defer f.Close()
	return safefile.Write(dst, 0o644, func(w io.Writer) error {
		_, err := io.Copy(w, f)
		return err
	})
}
