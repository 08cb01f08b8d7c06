package retrain

import (
	"context"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/kspaced/kspaced/priors"
)

// An EM run whose E-steps are split into shards, as Slurm array tasks run
// them, gives bit-identical laps to the same run in one process.
func TestShardedEStepsGiveTheSamePriors(t *testing.T) {
	if testing.Short() {
		t.Skip("trains two EM runs")
	}
	obs := emObservations(t, 24, 16, 2, 3, 0.02, 5)
	train, val := obs[:20], obs[20:]
	opts := func(dir string, laps int) EMOptions {
		o := emTestOptions(dir, laps)
		o.Train.Steps, o.Guard.Disabled, o.SamplesPerObservation = 60, true, 2
		return o
	}
	ctx := context.Background()
	whole := t.TempDir()
	if _, err := RunEM(ctx, train, val, opts(whole, 2)); err != nil {
		t.Fatal(err)
	}

	split := t.TempDir()
	if _, err := RunEM(ctx, train, val, opts(split, 0)); err != nil { // the Gaussian lap 0 alone
		t.Fatal(err)
	}
	const n = 3
	for k := 1; k <= 2; k++ {
		// A merge before every shard is in names the missing ones.
		if err := EStepShard(ctx, train, val, opts(split, k), k, 1, n); err != nil {
			t.Fatal(err)
		}
		err := MergeEStepShards(train, val, opts(split, k), k, n)
		if err == nil || !strings.Contains(err.Error(), "shards 0, 2 of 3 are missing") {
			t.Fatalf("merge with shards missing: %v", err)
		}
		// A part drawn under other E-step settings is not this run's: it is
		// drawn again, never mixed in.
		other := opts(split, k)
		other.Sampler.Steps = 12
		if !shardDone(train, opts(split, k), k, 1, n) || shardDone(train, other, k, 1, n) {
			t.Fatalf("lap %d shard 1: done %v under its own sampler, %v under 12 steps (want true, false)",
				k, shardDone(train, opts(split, k), k, 1, n), shardDone(train, other, k, 1, n))
		}
		for _, i := range []int{2, 0, 1} { // any order; shard 1 again is a no-op
			if err := EStepShard(ctx, train, val, opts(split, k), k, i, n); err != nil {
				t.Fatal(err)
			}
		}
		if err := MergeEStepShards(train, val, opts(split, k), k, n); err != nil {
			t.Fatal(err)
		}
		if left, _ := filepath.Glob(filepath.Join(split, "*.shard-*")); len(left) != 0 {
			t.Errorf("shards left after merging: %v", left)
		}
		recs, err := RunEM(ctx, train, val, opts(split, k))
		if err != nil {
			t.Fatal(err)
		}
		if !recs[k].EStepResumed {
			t.Errorf("lap %d drew its own E-step instead of the merged shards", k)
		}
	}
	// A shard of a lap that is done is a no-op, not an error.
	if err := EStepShard(ctx, train, val, opts(split, 2), 1, 0, n); err != nil {
		t.Errorf("shard of a finished lap: %v", err)
	}
	if err := EStepShard(ctx, train, val, opts(split, 3), 4, 0, n); err == nil {
		t.Error("a shard of lap 4 ran before lap 3")
	}
	for k := 0; k <= 2; k++ {
		a, _, err := priors.ReadTensors(filepath.Join(whole, LapCheckpoint(k)))
		if err != nil {
			t.Fatal(err)
		}
		b, _, err := priors.ReadTensors(filepath.Join(split, LapCheckpoint(k)))
		if err != nil {
			t.Fatal(err)
		}
		if len(a) != len(b) || len(a) == 0 {
			t.Fatalf("lap %d: %d and %d tensors", k, len(a), len(b))
		}
		for name, ta := range a {
			if !slices.Equal(ta.Data, b[name].Data) {
				t.Errorf("lap %d: tensor %s differs between the split and the whole run", k, name)
			}
		}
	}
	if _, err := os.Stat(filepath.Join(split, BestCheckpoint)); err != nil {
		t.Error(err)
	}
}
