// Package batch reconstructs an archive — a tree of k-space files and the
// DICOM studies beside them — into an output tree. A run is idempotent (a
// job whose output exists is skipped), resumable (a killed run leaves no
// partial output: each job is written aside and published by one rename) and
// shardable (Shard), so a Slurm array or a Kubernetes Indexed Job can split
// an archive across nodes with every output written exactly once.
package batch

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"time"

	"github.com/kspaced/kspaced/configs"
	"github.com/kspaced/kspaced/internal/safefile"
	"github.com/kspaced/kspaced/pipeline"
)

// Job is one k-space file of the archive and the DICOM files of its folder
// (the study its outputs join).
type Job struct {
	// Rel is the k-space file's path relative to the archive, with '/'
	// separators: the job's key for sharding and its output folder.
	Rel    string
	KSpace string
	Study  []string
}

// OutDir is where j's outputs are published under out.
func (j Job) OutDir(out string) string {
	return filepath.Join(out, filepath.FromSlash(strings.TrimSuffix(j.Rel, filepath.Ext(j.Rel))+"_recon"))
}

// Discover lists the jobs of an archive, sorted by Rel.
func Discover(in string) ([]Job, error) {
	byDir := map[string][]string{}
	var dirs []string
	err := filepath.WalkDir(in, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() {
			if p != in && strings.HasPrefix(d.Name(), ".") {
				return filepath.SkipDir
			}
			dirs = append(dirs, p)
			return nil
		}
		if d.Type().IsRegular() {
			byDir[filepath.Dir(p)] = append(byDir[filepath.Dir(p)], p)
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("list archive %s: %w", in, err)
	}
	var jobs []Job
	for _, d := range dirs {
		// File by file, so a damaged file fails its own job rather than the
		// listing of the whole archive.
		var kspace, study []string
		for _, f := range byDir[d] {
			k, o, err := pipeline.Classify([]string{f})
			switch {
			case err != nil || len(k) == 1:
				kspace = append(kspace, f)
			case len(o) == 1:
				study = append(study, f)
			}
		}
		for _, k := range kspace {
			rel, err := filepath.Rel(in, k)
			if err != nil {
				return nil, err
			}
			jobs = append(jobs, Job{Rel: filepath.ToSlash(rel), KSpace: k, Study: study})
		}
	}
	slices.SortFunc(jobs, func(a, b Job) int { return strings.Compare(a.Rel, b.Rel) })
	return jobs, nil
}

// Options configure a Run.
type Options struct {
	In, Out string
	Config  *configs.Config
	Shard   Shard
	Device  pipeline.Device
	// Reader parses the archive's files (nil: in this process); the command
	// uses a child process, so a file that crashes the HDF5 library fails
	// its own job instead of the shard.
	Reader pipeline.Reader
	// Log receives one line per job and the summary; nil discards them.
	Log io.Writer
	// LockWait is how long to wait for an earlier run of the same shard to
	// exit (a requeued Slurm task can start while its killed predecessor is
	// still being reaped); then Run fails with ErrShardBusy.
	LockWait time.Duration
}

// Summary is what a shard's run did; Run also writes it to
// OUT/.batch/shard-I-of-N.json.
type Summary struct {
	Shard    string    `json:"shard"`
	Archive  int       `json:"jobs_in_archive"`
	Owned    int       `json:"jobs_in_shard"`
	Done     int       `json:"done"`
	Skipped  int       `json:"skipped_already_done"`
	Failed   int       `json:"failed"`
	Seconds  float64   `json:"seconds"`
	Started  time.Time `json:"started"`
	Failures []Failure `json:"failures"`
}

// Failure is a job that did not reconstruct; it is retried on the next run.
type Failure struct {
	Job   string `json:"job"`
	Error string `json:"error"`
}

// ErrShardBusy means another process is running the same shard.
var ErrShardBusy = errors.New("another process is running this shard")

// Run reconstructs the jobs of o.Shard that have no published output.
// A job's failure is recorded in the summary (and OUT/.batch/failed/) and the
// run goes on; the error is for failures of the run itself.
func Run(ctx context.Context, o Options) (*Summary, error) {
	start := time.Now()
	log := o.Log
	if log == nil {
		log = io.Discard
	}
	if o.Shard.Count == 0 {
		o.Shard = All
	}
	meta := filepath.Join(o.Out, ".batch")
	partial := filepath.Join(meta, "partial", fmt.Sprintf("%d-of-%d", o.Shard.Index, o.Shard.Count))
	if err := os.MkdirAll(filepath.Dir(partial), 0o755); err != nil {
		return nil, fmt.Errorf("output tree: %w", err)
	}
	unlock, err := lock(partial+".lock", o.LockWait)
	if err != nil {
		return nil, err
	}
	defer unlock()
	// Only this shard writes under partial/, and it holds the lock: anything
	// there is left by a killed run of this shard.
	if err := os.RemoveAll(partial); err != nil {
		return nil, fmt.Errorf("clear partial outputs: %w", err)
	}
	jobs, err := Discover(o.In)
	if err != nil {
		return nil, err
	}
	sum := &Summary{Shard: o.Shard.String(), Archive: len(jobs), Started: start.UTC(), Failures: []Failure{}}
	var mine []Job
	for _, j := range jobs {
		if o.Shard.Owns(j.Rel) {
			mine = append(mine, j)
		}
	}
	sum.Owned = len(mine)
	fmt.Fprintf(log, "batch: shard %s: %d of %d jobs in %s\n", o.Shard, len(mine), len(jobs), o.In)
	for i, j := range mine {
		if err := ctx.Err(); err != nil {
			return sum, err
		}
		prefix := fmt.Sprintf("[%d/%d] %s", i+1, len(mine), j.Rel)
		if exists(j.OutDir(o.Out)) {
			sum.Skipped++
			fmt.Fprintf(log, "%s: already done\n", prefix)
			continue
		}
		t0 := time.Now()
		published, err := runJob(ctx, o, j, partial)
		switch {
		case err != nil && ctx.Err() != nil:
			return sum, ctx.Err()
		case err != nil:
			sum.Failed++
			sum.Failures = append(sum.Failures, Failure{Job: j.Rel, Error: err.Error()})
			fmt.Fprintf(log, "%s: FAILED: %v\n", prefix, err)
			if werr := writeJSON(failedPath(o.Out, j), Failure{Job: j.Rel, Error: err.Error()}); werr != nil {
				return sum, werr
			}
		case !published:
			sum.Skipped++
			fmt.Fprintf(log, "%s: published by another process meanwhile\n", prefix)
		default:
			sum.Done++
			_ = os.Remove(failedPath(o.Out, j))
			fmt.Fprintf(log, "%s: done in %.1f s\n", prefix, time.Since(t0).Seconds())
		}
	}
	_ = os.Remove(partial)
	sum.Seconds = time.Since(start).Seconds()
	fmt.Fprintf(log, "batch: shard %s: %d done, %d already done, %d failed, %.1f s\n",
		o.Shard, sum.Done, sum.Skipped, sum.Failed, sum.Seconds)
	err = writeJSON(filepath.Join(meta, fmt.Sprintf("shard-%d-of-%d.json", o.Shard.Index, o.Shard.Count)), sum)
	return sum, err
}

// runJob reconstructs j into a folder under partial and publishes it by
// renaming it into place; published is false when another process got there
// first (its output stands, ours is dropped).
func runJob(ctx context.Context, o Options, j Job, partial string) (published bool, err error) {
	tmp := filepath.Join(partial, key(j.Rel))
	if err := os.MkdirAll(tmp, 0o755); err != nil {
		return false, err
	}
	defer os.RemoveAll(tmp)
	inputs := append([]string{j.KSpace}, j.Study...)
	rep, err := pipeline.Run(ctx, pipeline.Job{ID: j.Rel, Inputs: inputs, Config: o.Config, Device: o.Device, Reader: o.Reader}, tmp, nil)
	if err != nil {
		return false, err
	}
	final := j.OutDir(o.Out)
	// The report names outputs where they will be, relative to the job folder.
	for i, p := range rep.Outputs {
		if r, err := filepath.Rel(tmp, p); err == nil {
			rep.Outputs[i] = filepath.ToSlash(r)
		}
	}
	for i, p := range rep.Inputs {
		if r, err := filepath.Rel(o.In, p); err == nil {
			rep.Inputs[i] = filepath.ToSlash(r)
		}
	}
	if err := rep.Write(tmp); err != nil {
		return false, err
	}
	if err := safefile.SyncTree(tmp); err != nil {
		return false, err
	}
	if err := os.MkdirAll(filepath.Dir(final), 0o755); err != nil {
		return false, err
	}
	if err := os.Rename(tmp, final); err != nil {
		if errors.Is(err, fs.ErrExist) || errors.Is(err, syscall.ENOTEMPTY) {
			return false, nil
		}
		return false, fmt.Errorf("publish %s: %w", final, err)
	}
	return true, safefile.SyncDir(filepath.Dir(final))
}

func key(rel string) string {
	h := sha256.Sum256([]byte(rel))
	return hex.EncodeToString(h[:8])
}

func failedPath(out string, j Job) string {
	return filepath.Join(out, ".batch", "failed", key(j.Rel)+".json")
}

func exists(p string) bool {
	_, err := os.Stat(p)
	return err == nil
}

// lock takes an exclusive flock on path, waiting up to wait for it.
func lock(path string, wait time.Duration) (func(), error) {
	f, err := os.OpenFile(path, os.O_CREATE|os.O_RDWR, 0o644)
	if err != nil {
		return nil, fmt.Errorf("lock %s: %w", path, err)
	}
	for deadline := time.Now().Add(wait); ; time.Sleep(100 * time.Millisecond) {
		err = syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB)
		if err == nil {
			return func() { f.Close() }, nil
		}
		if !errors.Is(err, syscall.EWOULDBLOCK) || time.Now().After(deadline) {
			break
		}
	}
	f.Close()
	if errors.Is(err, syscall.EWOULDBLOCK) {
		return nil, fmt.Errorf("%s: %w", path, ErrShardBusy)
	}
	return nil, fmt.Errorf("lock %s: %w", path, err)
}

// writeJSON writes v atomically and durably (internal/safefile).
func writeJSON(path string, v any) error {
	raw, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		return err
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return err
	}
	return safefile.WriteFile(path, append(raw, '\n'), 0o644)
}
