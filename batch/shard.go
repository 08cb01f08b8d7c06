package batch

import (
	"fmt"
	"hash/fnv"
	"strconv"
	"strings"
)

// Shard is one part of an archive: the jobs whose key hashes to Index
// modulo Count. Hashing the job's path (rather than numbering a sorted list)
// keeps a job in the same shard when files are added to the archive between
// the runs of two shards, so no job is done twice or missed.
type Shard struct{ Index, Count int }

// All is the whole archive as one shard.
var All = Shard{0, 1}

func (s Shard) String() string { return fmt.Sprintf("%d/%d", s.Index, s.Count) }

// Owns reports whether the job with key rel belongs to s.
func (s Shard) Owns(rel string) bool {
	h := fnv.New32a()
	h.Write([]byte(rel))
	return int(h.Sum32()%uint32(s.Count)) == s.Index
}

// ParseShard reads "i/N" (0 ≤ i < N).
func ParseShard(v string) (Shard, error) {
	i, n, ok := strings.Cut(v, "/")
	if !ok {
		return Shard{}, fmt.Errorf("shard %q: want i/N, e.g. 0/4", v)
	}
	return newShard(i, n, "shard "+v)
}

func newShard(i, n, what string) (Shard, error) {
	idx, err1 := strconv.Atoi(strings.TrimSpace(i))
	cnt, err2 := strconv.Atoi(strings.TrimSpace(n))
	if err1 != nil || err2 != nil || cnt < 1 || idx < 0 || idx >= cnt {
		return Shard{}, fmt.Errorf("%s: want an index i and a count N with 0 ≤ i < N", what)
	}
	return Shard{idx, cnt}, nil
}

// ShardFromEnv reads the shard a scheduler assigned: Slurm array tasks
// (SLURM_ARRAY_TASK_ID, offset by SLURM_ARRAY_TASK_MIN, out of
// SLURM_ARRAY_TASK_COUNT) or a Kubernetes Indexed Job (JOB_COMPLETION_INDEX,
// which carries no count: pass it as count, e.g. from --shards). ok is false
// when neither is set.
func ShardFromEnv(getenv func(string) string, count int) (s Shard, ok bool, err error) {
	if id := getenv("SLURM_ARRAY_TASK_ID"); id != "" {
		n := getenv("SLURM_ARRAY_TASK_COUNT")
		if n == "" {
			if count < 1 {
				return Shard{}, false, fmt.Errorf("SLURM_ARRAY_TASK_ID is set but SLURM_ARRAY_TASK_COUNT is not: give --shards N")
			}
			n = strconv.Itoa(count)
		}
		if lo := getenv("SLURM_ARRAY_TASK_MIN"); lo != "" {
			a, err1 := strconv.Atoi(id)
			b, err2 := strconv.Atoi(lo)
			if err1 == nil && err2 == nil {
				id = strconv.Itoa(a - b)
			}
		}
		s, err := newShard(id, n, "Slurm array task "+id+" of "+n)
		return s, err == nil, err
	}
	if id := getenv("JOB_COMPLETION_INDEX"); id != "" {
		if count < 1 {
			return Shard{}, false, fmt.Errorf("JOB_COMPLETION_INDEX is set: give the Job's completions as --shards N")
		}
		s, err := newShard(id, strconv.Itoa(count), "Kubernetes completion index "+id)
		return s, err == nil, err
	}
	return Shard{}, false, nil
}
