// Command kspaced reconstructs accelerated MRI: a drop-folder daemon (serve),
// one-shot reconstruction (recon), simulation, inspection and benchmarks.
// Commands only parse flags and call packages.
package main

import (
	"errors"
	"fmt"
	"io"
	"os"
	"runtime/debug"
	"strings"

	"github.com/kspaced/kspaced/internal/isolate"
	"github.com/spf13/cobra"
)

// Exit statuses. Usage errors take sysexits.h's EX_USAGE, not 2: Go's
// runtime exits with 2 on a fatal error or an unrecovered panic in a
// goroutine, and a crash must not read as "called wrongly" (a supervisor
// restarts a crash and should not retry a bad command line or config).
const (
	exitFailure = 1
	exitUsage   = 64
)

// exitHelp is the root command's note on exit statuses.
const exitHelp = `Exit status: 0 success; 1 failure (unreadable input, failed reconstruction,
failed jobs of a batch); 64 usage error (bad flag, argument or config); 2 or
death by a signal: kspaced crashed (a fatal error of the Go runtime, a panic
in a background goroutine) — please report it.`

// usageError marks errors in how kspaced was called (exitUsage); every
// other failure exits with exitFailure.
type usageError struct{ error }

func usagef(format string, args ...any) error { return usageError{fmt.Errorf(format, args...)} }

func main() {
	// The hidden reader child (see internal/isolate) skips cobra entirely.
	if len(os.Args) > 1 && os.Args[1] == isolate.ChildArg {
		os.Exit(isolate.Main(os.Args[2:]))
	}
	os.Exit(execute(newRootCmd(), os.Args[1:], os.Stderr))
}

// execute runs root and returns the exit status: 0, exitUsage for a usage
// error, exitFailure for every other failure — a panic of the command
// included. What execute cannot recover (a runtime fatal error, a panic in
// another goroutine) exits with Go's status 2.
func execute(root *cobra.Command, args []string, stderr io.Writer) (code int) {
	defer func() {
		if v := recover(); v != nil {
			fmt.Fprintf(stderr, "kspaced: internal error: %v\n%s", v, debug.Stack())
			code = exitFailure
		}
	}()
	root.SetArgs(args)
	err := root.Execute()
	if err == nil {
		return 0
	}
	fmt.Fprintln(stderr, "kspaced:", err)
	var ue usageError
	if errors.As(err, &ue) || isCobraUsage(err) {
		return exitUsage
	}
	return exitFailure
}

func newRootCmd() *cobra.Command {
	root := &cobra.Command{
		Use:   "kspaced",
		Short: "Reconstruct accelerated MRI with diffusion posterior sampling",
		Long: `kspaced reconstructs undersampled multi-coil k-space (ISMRMRD, fastMRI HDF5,
BART .cfl, NumPy .npy) and writes the reconstruction and its uncertainty map as
DICOM series of the same study. Run 'kspaced serve' as a drop-folder service or
'kspaced recon FILE' for one file.

` + exitHelp,
		SilenceUsage:  true,
		SilenceErrors: true,
	}
	root.SetFlagErrorFunc(func(_ *cobra.Command, err error) error { return usageError{err} })
	root.AddCommand(newServeCmd(), newReconCmd(), newRetrainCmd(), newSimulateCmd(), newInspectCmd(), newQCCmd(), newBenchCmd(), newConfigCmd(),
		newBatchCmd(), newSlurmCmd(), newPACSCmd(), newPriorCmd())
	return root
}

// isCobraUsage recognises cobra's own argument and command errors, which do
// not pass through the flag error hook (flag errors do). Matched at the
// start only: "invalid argument" inside an error is EINVAL from the system,
// a failure, not a usage error.
func isCobraUsage(err error) bool {
	msg := err.Error()
	for _, p := range []string{"unknown command ", "accepts ", "requires at least ", "requires at most "} {
		if strings.HasPrefix(msg, p) {
			return true
		}
	}
	return false
}
