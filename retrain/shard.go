package retrain

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/kspaced/kspaced/posterior"
	"github.com/kspaced/kspaced/priors"
)

// A lap's E-step split across processes (Slurm array tasks, one node each):
// shard i of n samples the training observations whose index ≡ i (mod n)
// under lap k-1's prior and saves them in the run folder; the M-step job
// merges the shards into the lap's samples file (MergeEStepShards), and
// RunEM then goes on with the lap as if it had drawn them itself. Seeds follow
// the observation's index, so the samples — and so the priors — are those of
// an unsplit run.

func shardFile(k, i, n int) string {
	return fmt.Sprintf("lap-%02d.samples.shard-%d-of-%d.safetensors", k, i, n)
}

// shardIndices are the observations of shard i of n among total.
func shardIndices(total, i, n int) []int {
	var w []int
	for j := i; j < total; j += n {
		w = append(w, j)
	}
	return w
}

// runOf is what pins a run folder to its data and settings (run.json).
func runOf(train, val []Observation, opt EMOptions) emRun {
	cfg := opt.Network
	return emRun{Format: emRunFormat, DataID: opt.DataID, Train: len(train), Val: len(val), Rows: cfg.Rows, Cols: cfg.Cols,
		Rank: opt.Gaussian.Rank, GaussLap: opt.Gaussian.Laps, Network: cfg, Seed: opt.Seed}
}

// lapSampler is the E-step sampler of lap k (its seed differs per lap).
func lapSampler(opt EMOptions, k int) posterior.SampleOptions {
	so := opt.Sampler
	so.Seed = opt.Seed ^ uint64(k)<<40
	return so
}

// lapPending checks that lap k is the next lap of the run in opt.Dir: done is
// true when lap k (or its merged samples) already exists.
func lapPending(train, val []Observation, opt EMOptions, k int) (done bool, err error) {
	if k < 1 {
		return false, fmt.Errorf("em: E-step shards are for network laps (1 and later), not lap %d", k)
	}
	if err := pinRun(opt.Dir, runOf(train, val, opt), opt.AdoptData); err != nil {
		return false, err
	}
	recs, err := ReadLaps(opt.Dir)
	if err != nil {
		return false, err
	}
	switch {
	case len(recs) > k:
		return true, nil
	case len(recs) < k:
		return false, fmt.Errorf("em: lap %d's E-step needs lap %d, and %s has %d laps done", k, k-1, opt.Dir, len(recs))
	}
	n := 2 * opt.Network.Rows * opt.Network.Cols
	per := opt.samplesPerObservation()
	_, _, err = readSamples(filepath.Join(opt.Dir, samplesFile(k)), opt, k, per*len(train), n)
	return err == nil, nil
}

// EStepShard draws lap k's E-step samples of shard i of n into the run
// folder opt.Dir; lap k-1 must be done. A shard, or a lap, already done is
// left as it is, so a failed task can simply be rerun.
func EStepShard(ctx context.Context, train, val []Observation, opt EMOptions, k, i, n int) error {
	if err := opt.defaults(); err != nil {
		return err
	}
	if n < 1 || i < 0 || i >= n {
		return fmt.Errorf("em: E-step shard %d of %d", i, n)
	}
	if done, err := lapPending(train, val, opt, k); err != nil || done {
		return err
	}
	if shardDone(train, opt, k, i, n) {
		return nil
	}
	prior, _, err := priors.LoadPrior(filepath.Join(opt.Dir, LapCheckpoint(k-1)))
	if err != nil {
		return fmt.Errorf("em lap %d: %w", k, err)
	}
	ep, err := atObservations(prior, opt)
	if err != nil {
		return fmt.Errorf("em lap %d: %w", k, err)
	}
	return drawShard(ctx, ep, train, opt, k, i, n)
}

// shardDone reports whether shard i of n of lap k's E-step is saved.
func shardDone(train []Observation, opt EMOptions, k, i, n int) bool {
	which := shardIndices(len(train), i, n)
	_, _, err := readSamples(filepath.Join(opt.Dir, shardFile(k, i, n)), opt, k,
		opt.samplesPerObservation()*len(which), 2*opt.Network.Rows*opt.Network.Cols)
	return err == nil
}

// drawShard draws shard i of n of lap k's E-step under ep (the previous
// lap's prior at the observations' size) and saves it.
func drawShard(ctx context.Context, ep priors.Denoiser, train []Observation, opt EMOptions, k, i, n int) error {
	rows, cols := opt.Network.Rows, opt.Network.Cols
	per := opt.samplesPerObservation()
	which := shardIndices(len(train), i, n)
	buf := make([]float32, per*len(which)*2*rows*cols)
	t0 := time.Now()
	err := eStepSamplesOf(ctx, ep, train, which, lapSampler(opt, k), opt.Workers, per, buf,
		bar(opt.Progress, fmt.Sprintf("lap %d E-step part %d/%d", k, i+1, n), per*len(which)))
	if err != nil {
		return fmt.Errorf("em lap %d: %w", k, err)
	}
	return writeSamples(filepath.Join(opt.Dir, shardFile(k, i, n)), buf, opt, k, per*len(which), rows, cols, time.Since(t0).Seconds())
}

// MergeEStepShards assembles lap k's samples file from its n shard files,
// naming any shard that is missing, and removes the shards. Nothing is done
// when lap k or its samples exist already.
func MergeEStepShards(train, val []Observation, opt EMOptions, k, n int) error {
	if err := opt.defaults(); err != nil {
		return err
	}
	if done, err := lapPending(train, val, opt, k); err != nil || done {
		return err
	}
	rows, cols := opt.Network.Rows, opt.Network.Cols
	n2 := 2 * rows * cols
	per := opt.samplesPerObservation()
	all := make([]float32, per*len(train)*n2)
	var missing []string
	var secs float64
	for i := 0; i < n; i++ {
		which := shardIndices(len(train), i, n)
		part, s, err := readSamples(filepath.Join(opt.Dir, shardFile(k, i, n)), opt, k, per*len(which), n2)
		if err != nil {
			missing = append(missing, fmt.Sprint(i))
			continue
		}
		secs += s
		for j := 0; j < per; j++ {
			for q, o := range which {
				src := (j*len(which) + q) * n2
				copy(all[(j*len(train)+o)*n2:], part[src:src+n2])
			}
		}
	}
	if len(missing) > 0 {
		return fmt.Errorf("em lap %d: E-step shards %s of %d are missing or from another run; rerun them", k, strings.Join(missing, ", "), n)
	}
	if err := writeSamples(filepath.Join(opt.Dir, samplesFile(k)), all, opt, k, per*len(train), rows, cols, secs); err != nil {
		return fmt.Errorf("em lap %d: %w", k, err)
	}
	for i := 0; i < n; i++ {
		if err := os.Remove(filepath.Join(opt.Dir, shardFile(k, i, n))); err != nil && !errors.Is(err, os.ErrNotExist) {
			return err
		}
	}
	return nil
}
