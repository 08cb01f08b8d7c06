package isolate

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"runtime"
	"runtime/debug"
	"syscall"

	"github.com/kspaced/kspaced/dicomio"
	"github.com/kspaced/kspaced/mri/kspaceio"
	"golang.org/x/sys/unix"
)

// stageEnv marks the second stage: the process re-executed from a thread
// that Landlock already restricts.
const stageEnv = "KSPACED_READER_STAGE=2"

// beforeRead runs in the child after the limits are set, right before the
// files are opened; tests use it (see faults.go) to make the child crash,
// hang or hog memory.
var beforeRead func(paths []string)

// Main is the child side: args[0] is the request. It sets the limits before
// touching any file, restricts file access where the kernel allows, reads,
// and writes the answer on stdout. The exit status is 0 whenever an answer
// (a volume, a study or a read error) was written.
func Main(args []string) int {
	if len(args) != 1 {
		fmt.Fprintln(os.Stderr, "kspaced: internal reader: want one request")
		return 2
	}
	var req request
	if err := json.Unmarshal([]byte(args[0]), &req); err != nil {
		fmt.Fprintln(os.Stderr, "kspaced: internal reader: bad request:", err)
		return 2
	}
	study := req.Op == "dicom"
	fail := func(err error) int {
		if werr := writeError(os.Stdout, err, study); werr != nil {
			return 3
		}
		return 0
	}
	if !secondStage() {
		if err := setLimits(req); err != nil {
			return fail(fmt.Errorf("set reader limits: %w", err))
		}
		// Landlock restricts the calling thread only (cgo rules out
		// restricting all Go threads), so restrict this one and re-execute
		// from it: the new image and every thread it starts inherit it.
		runtime.LockOSThread()
		ok, err := landlock(req.Roots)
		if err != nil {
			return fail(fmt.Errorf("restrict file access: %w", err))
		}
		if ok {
			exe, err := os.Executable()
			if err == nil {
				err = syscall.Exec(exe, os.Args, append(os.Environ(), stageEnv))
			}
			return fail(fmt.Errorf("restart the reader: %w", err))
		}
		// No Landlock here: limits only.
	}
	debug.SetMemoryLimit(req.Memory)
	if beforeRead != nil {
		beforeRead(req.Paths)
	}
	switch req.Op {
	case "kspace":
		if len(req.Paths) != 1 {
			return fail(errors.New("want one k-space file"))
		}
		v, err := kspaceio.ReadLimited(req.Paths[0], kspaceio.Limits{MaxBytes: req.MaxBytes})
		if err != nil {
			return fail(err)
		}
		if err := writeVolume(os.Stdout, v); err != nil {
			return 3
		}
	case "dicom":
		opt := dicomio.ReadOptions{SkipPixels: true, Workers: 2, MemoryBudget: req.Memory / 4}
		sd, fe := opt.ReadStudies(req.Paths...)
		if err := writeStudies(os.Stdout, sd, fe); err != nil {
			return 3
		}
	default:
		return fail(fmt.Errorf("unknown operation %q", req.Op))
	}
	return 0
}

func secondStage() bool {
	for _, e := range os.Environ() {
		if e == stageEnv {
			return true
		}
	}
	return false
}

func setLimits(req request) error {
	set := func(res int, v uint64) error {
		return unix.Setrlimit(res, &unix.Rlimit{Cur: v, Max: v})
	}
	if req.Memory > 0 {
		if err := set(unix.RLIMIT_AS, uint64(req.Memory+asOverhead)); err != nil {
			return err
		}
		if err := set(unix.RLIMIT_DATA, uint64(req.Memory+dataOverhead)); err != nil {
			return err
		}
	}
	if req.CPUSecs > 0 {
		if err := set(unix.RLIMIT_CPU, uint64(req.CPUSecs)); err != nil {
			return err
		}
	}
	// No core files, and no file may grow: the child writes only to its pipes.
	if err := set(unix.RLIMIT_CORE, 0); err != nil {
		return err
	}
	return set(unix.RLIMIT_FSIZE, 0)
}
