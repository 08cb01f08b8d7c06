// Package isolate reads untrusted job files (k-space and DICOM) in a child
// process: the same binary, started with ChildArg, under limits on memory,
// CPU and wall time and, where the kernel has Landlock, with no file access
// beyond the job's folder. A crash or hang of a parser (the HDF5 C library
// above all) then kills only the child, and the job fails with a plain
// reason while the daemon and its other jobs go on.
//
// The daemon, `kspaced batch`, `recon` and `inspect` read through a Reader
// (a child costs tens of milliseconds of start-up per file, docs/bench/isolate.md).
package isolate

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"slices"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/kspaced/kspaced/dicomio"
	"github.com/kspaced/kspaced/mri/kspaceio"
)

// ChildArg is the hidden first argument that makes the binary a reader
// child; cmd/kspaced hands os.Args[2:] to Main when it sees it.
const ChildArg = "__read-untrusted"

// Defaults of Limits; a fastMRI knee volume (about 1 GB of k-space) fits.
const (
	DefaultMemory = 4 << 30
	DefaultCPU    = 120 * time.Second
	DefaultWall   = 180 * time.Second
	DefaultResult = 2 << 30
)

// The child's memory limits: RLIMIT_DATA (writable memory: heap, malloc,
// thread stacks) at Memory plus dataOverhead, what an idle child already
// holds (measured: 113 MiB); RLIMIT_AS at Memory plus asOverhead, for the
// address space the Go runtime reserves without using (measured: 1.4 GiB).
const (
	dataOverhead = 256 << 20
	asOverhead   = 2 << 30
)

// ErrUnsafe marks reads the child could not finish: it crashed, ran past a
// limit, or sent back something malformed.
var ErrUnsafe = errors.New("the file could not be read safely")

// Limits bound one child. Zero fields take the defaults.
type Limits struct {
	// Memory is what the child may allocate: its Go memory limit, and
	// (with the overheads above) its RLIMIT_DATA and RLIMIT_AS, which C
	// allocations in the HDF5 library meet too.
	Memory int64
	// CPU is the child's CPU-time limit (RLIMIT_CPU), whole seconds.
	CPU time.Duration
	// Wall is how long the parent waits before killing the child.
	Wall time.Duration
	// Result bounds the bytes the parent accepts back, and the k-space
	// bytes the child agrees to read.
	Result int64
}

func (l Limits) withDefaults() Limits {
	if l.Memory <= 0 {
		l.Memory = DefaultMemory
	}
	if l.CPU <= 0 {
		l.CPU = DefaultCPU
	}
	if l.Wall <= 0 {
		l.Wall = DefaultWall
	}
	if l.Result <= 0 {
		l.Result = DefaultResult
	}
	return l
}

// Reader starts one child per read. The zero value uses this executable and
// the default limits.
type Reader struct {
	Limits Limits
	// Exe is the binary to start (default os.Executable()); tests use their
	// own test binary, whose TestMain calls Main.
	Exe string
	// Env is added to the child's (otherwise minimal) environment.
	Env []string
	// Observe, when set, receives each child's outcome and resource use
	// (for metrics and tests); it may be called from several goroutines.
	Observe func(Usage)
}

// Usage is how one child ended and what it used.
type Usage struct {
	Outcome string // one of Outcomes
	MaxRSS  int64  // peak resident memory, bytes
	CPU     time.Duration
	Wall    time.Duration
}

// How a child ended, as Usage.Outcome says.
const (
	OutcomeOK        = "ok"           // it answered: a volume, or a study with per-file errors
	OutcomeReadError = "read_error"   // it refused the file with a read error of its own
	OutcomeCrash     = "crash"        // it died of a signal or exited without an answer
	OutcomeMemory    = "memory_limit" // it ran out of the memory it may use
	OutcomeCPU       = "cpu_limit"    // it used up its CPU time
	OutcomeTimeout   = "timeout"      // it ran past its wall limit and was killed
	OutcomeMalformed = "malformed"    // its answer was too large or garbled
	OutcomeCanceled  = "canceled"     // the job was cancelled (job_timeout, shutdown)
	// Go's own fatal errors exit with status 2 like any failed child; the
	// crash report's first lines tell them apart.
	OutcomeRuntimeFatal = "runtime_fatal" // a fatal error of the Go runtime (stack overflow, concurrent map writes, …)
	OutcomePanic        = "panic"         // an unrecovered panic: a bug in the reader
)

// Outcomes lists every Usage.Outcome.
var Outcomes = []string{OutcomeOK, OutcomeReadError, OutcomeCrash, OutcomeMemory, OutcomeCPU,
	OutcomeTimeout, OutcomeMalformed, OutcomeCanceled, OutcomeRuntimeFatal, OutcomePanic}

// request is what the parent asks; it travels as the child's argument.
type request struct {
	Op       string   `json:"op"` // "kspace" or "dicom"
	Paths    []string `json:"paths"`
	Roots    []string `json:"roots"` // folders the child may read (Landlock)
	Memory   int64    `json:"memory"`
	CPUSecs  int64    `json:"cpu_s"`
	MaxBytes int64    `json:"max_bytes"`
}

// KSpace reads one k-space file in a child. The child may read only the
// file's folder (its companions live there: NAME_mask.npy, NAME.hdr).
func (r *Reader) KSpace(ctx context.Context, path string) (*kspaceio.Volume, error) {
	abs, err := filepath.Abs(path)
	if err != nil {
		return nil, err
	}
	var v *kspaceio.Volume
	err = r.run(ctx, request{Op: "kspace", Paths: []string{abs}, Roots: []string{filepath.Dir(abs)}}, func(rd io.Reader, lim Limits) error {
		var err error
		v, err = decodeVolume(rd, lim.Result)
		return err
	})
	var ce childError
	if errors.As(err, &ce) {
		return nil, err // the reader's own error names the file
	}
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", filepath.Base(path), err)
	}
	v.Path = path
	return v, nil
}

// Study reads the DICOM files (or folders) as dicomio.ReadStudies does,
// headers only (the pipeline uses no source pixels), in a child that may
// read only the folders holding them.
func (r *Reader) Study(ctx context.Context, files []string) ([]*dicomio.StudyData, []dicomio.FileError, error) {
	if len(files) == 0 {
		return nil, nil, nil
	}
	req := request{Op: "dicom"}
	seen := map[string]bool{}
	for _, f := range files {
		abs, err := filepath.Abs(f)
		if err != nil {
			return nil, nil, err
		}
		req.Paths = append(req.Paths, abs)
		d := filepath.Dir(abs)
		if st, err := os.Stat(abs); err == nil && st.IsDir() {
			d = abs // a folder: itself, not its parent
		}
		if !seen[d] {
			seen[d] = true
			req.Roots = append(req.Roots, d)
		}
	}
	var sd []*dicomio.StudyData
	var fe []dicomio.FileError
	err := r.run(ctx, req, func(rd io.Reader, lim Limits) error {
		var err error
		sd, fe, err = decodeStudies(rd, lim.Result)
		return err
	})
	if err != nil {
		return nil, nil, fmt.Errorf("read DICOM study: %w", err)
	}
	return sd, fe, nil
}

// stderrHead keeps the first bytes a child writes to stderr (a Go crash
// report starts with its reason), for telling a crash from running out of
// memory; never shown to users, as it may quote file content.
type stderrHead struct {
	mu  sync.Mutex
	buf []byte
}

const headBytes = 8192

func (t *stderrHead) Write(p []byte) (int, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if n := headBytes - len(t.buf); n > 0 {
		t.buf = append(t.buf, p[:min(n, len(p))]...)
	}
	return len(p), nil
}

func (t *stderrHead) String() string {
	t.mu.Lock()
	defer t.mu.Unlock()
	return string(t.buf)
}

func (r *Reader) run(ctx context.Context, req request, decode func(io.Reader, Limits) error) error {
	lim := r.Limits.withDefaults()
	exe := r.Exe
	if exe == "" {
		var err error
		if exe, err = os.Executable(); err != nil {
			return fmt.Errorf("find the reader binary: %w", err)
		}
	}
	req.Memory, req.MaxBytes = lim.Memory, lim.Result
	req.CPUSecs = max(1, int64(lim.CPU/time.Second))
	arg, err := json.Marshal(req)
	if err != nil {
		return err
	}
	wall := lim.Wall
	if dl, ok := ctx.Deadline(); ok && time.Until(dl) < wall {
		wall = max(time.Until(dl), time.Millisecond)
	}
	cctx, cancel := context.WithTimeout(ctx, wall)
	defer cancel()
	cmd := exec.CommandContext(cctx, exe, ChildArg, string(arg))
	// A minimal environment: no plugin loading in HDF5 (a file could name a
	// filter that loads a library), few malloc arenas (each reserves 64 MiB
	// of the address-space limit), short crash reports.
	cmd.Env = []string{"HDF5_PLUGIN_PRELOAD=::", "MALLOC_ARENA_MAX=2", "GOTRACEBACK=single", "GOMAXPROCS=2", "LC_ALL=C"}
	for _, k := range passEnv {
		if v, ok := os.LookupEnv(k); ok {
			cmd.Env = append(cmd.Env, k+"="+v)
		}
	}
	cmd.Env = append(cmd.Env, r.Env...)
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL, Setpgid: true}
	cmd.Cancel = func() error { return syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) }
	cmd.WaitDelay = 2 * time.Second
	var tail stderrHead
	cmd.Stderr = &tail
	out, err := cmd.StdoutPipe()
	if err != nil {
		return err
	}
	// Pdeathsig fires when the thread that started the child exits, not the
	// process: keep this goroutine on its thread until the child is reaped.
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	started := time.Now()
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("start the reader: %w", err)
	}
	derr := decode(out, lim)
	var ce childError
	reported := errors.As(derr, &ce)
	if derr != nil && !reported {
		// Stop a child that sent too much or garbage; its exit says why.
		_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
	}
	_, _ = io.Copy(io.Discard, io.LimitReader(out, 1<<20))
	werr := cmd.Wait()
	outcome, err := outcomeOf(ctx, cctx, wall, reported, derr, werr, cmd.ProcessState, &tail, lim)
	if ps := cmd.ProcessState; ps != nil && r.Observe != nil {
		u := Usage{Outcome: outcome, CPU: ps.UserTime() + ps.SystemTime(), Wall: time.Since(started)}
		if ru, ok := ps.SysUsage().(*syscall.Rusage); ok {
			u.MaxRSS = ru.Maxrss << 10 // KiB on Linux
		}
		r.Observe(u)
	}
	return err
}

// outcomeOf says how a finished child ended, and the error its read returns.
func outcomeOf(ctx, cctx context.Context, wall time.Duration, reported bool, derr, werr error, ps *os.ProcessState, tail *stderrHead, lim Limits) (string, error) {
	if cctx.Err() != nil && ctx.Err() == nil {
		return OutcomeTimeout, fmt.Errorf("%w: the reader took longer than %s and was stopped", ErrUnsafe, roundDur(wall))
	}
	if ctx.Err() != nil {
		return OutcomeCanceled, ctx.Err()
	}
	switch {
	case reported:
		return OutcomeReadError, derr
	case werr != nil:
		return classify(werr, ps, tail, lim)
	case derr != nil:
		return OutcomeMalformed, fmt.Errorf("%w: the reader's answer was malformed: %v", ErrUnsafe, derr)
	}
	return OutcomeOK, nil
}

func roundDur(d time.Duration) time.Duration {
	if d >= time.Second {
		return d.Round(time.Second)
	}
	return d.Round(time.Millisecond)
}

// memoryExhausted reports whether a child's stderr says it ran out of the
// address space RLIMIT_AS leaves it: the Go runtime's own allocation
// failures, and a new thread's stack that cannot be mapped (the runtime
// or cgo then aborts with SIGABRT; seen once in CI on the memory hog).
func memoryExhausted(text string) bool {
	for _, s := range []string{"out of memory", "cannot allocate memory", "failed to reserve",
		"pthread_create failed", "failed to create new OS thread"} {
		if strings.Contains(text, s) {
			return true
		}
	}
	return false
}

// classify turns a failed child into an outcome and a reason in plain words.
func classify(werr error, ps *os.ProcessState, tail *stderrHead, lim Limits) (string, error) {
	if ps == nil {
		return OutcomeCrash, fmt.Errorf("%w: the reader failed: %v", ErrUnsafe, werr)
	}
	cpu := ps.UserTime() + ps.SystemTime()
	ws, _ := ps.Sys().(syscall.WaitStatus)
	text := tail.String()
	switch {
	case cpu >= lim.CPU-time.Second/2 && (ws.Signaled() && (ws.Signal() == syscall.SIGKILL || ws.Signal() == syscall.SIGXCPU)):
		return OutcomeCPU, fmt.Errorf("%w: the reader used more than %s of CPU time and was stopped", ErrUnsafe, roundDur(lim.CPU))
	case memoryExhausted(text):
		return OutcomeMemory, fmt.Errorf("%w: the reader needed more memory than the %d MiB it may use", ErrUnsafe, lim.Memory>>20)
	case ws.Signaled():
		return OutcomeCrash, fmt.Errorf("%w: the reader crashed (%s)", ErrUnsafe, ws.Signal())
	case panicLine.MatchString(text):
		// Go code of ours panicked, a nil dereference ("[signal SIGSEGV")
		// too: a bug to fix, unlike a fault in C code. The panic's value
		// may hold file content: not shown.
		return OutcomePanic, fmt.Errorf("%w: the reader panicked (an internal error of kspaced's reader; please report it with the file)", ErrUnsafe)
	}
	for _, s := range []string{"SIGSEGV", "SIGBUS", "SIGILL", "SIGFPE", "SIGABRT"} {
		if strings.Contains(text, s) {
			return OutcomeCrash, fmt.Errorf("%w: the reader crashed (%s)", ErrUnsafe, s)
		}
	}
	if m := fatalLine.FindStringSubmatch(text); m != nil {
		// Named only when it is one of the runtime's fixed texts: the
		// stderr of a child may quote the file.
		what := ""
		if slices.Contains(runtimeFatals, m[1]) {
			what = " (" + m[1] + ")"
		}
		return OutcomeRuntimeFatal, fmt.Errorf("%w: the reader stopped on a fatal error of the Go runtime%s", ErrUnsafe, what)
	}
	return OutcomeCrash, fmt.Errorf("%w: the reader crashed (exit status %d)", ErrUnsafe, ws.ExitStatus())
}

var (
	fatalLine = regexp.MustCompile(`(?m)^fatal error: (.*)$`)
	panicLine = regexp.MustCompile(`(?m)^panic: `)
)

// runtimeFatals are fatal errors of the Go runtime (runtime.throw and
// fatal texts) worth naming; out-of-memory ones are classified earlier.
var runtimeFatals = []string{
	"stack overflow",
	"concurrent map writes",
	"concurrent map read and map write",
	"concurrent map iteration and map write",
	"all goroutines are asleep - deadlock!",
	"sync: unlock of unlocked mutex",
	"sync: RUnlock of unlocked RWMutex",
	"sync: Unlock of unlocked RWMutex",
	"morestack on g0",
	"runtime: split stack overflow",
	"found bad pointer in Go heap",
	"cgo argument has Go pointer to unpinned Go pointer",
}

// childError is an ordinary read error the child reported (the file is
// damaged or not what it claims): the parser stayed in control.
type childError struct {
	msg     string
	unknown bool // wraps kspaceio.ErrUnknownFormat
}

func (e childError) Error() string { return e.msg }

func (e childError) Unwrap() error {
	if e.unknown {
		return kspaceio.ErrUnknownFormat
	}
	return nil
}
