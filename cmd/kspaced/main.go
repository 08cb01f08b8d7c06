// Command kspaced reconstructs accelerated MRI: a drop-folder daemon (serve),
// one-shot reconstruction (recon), simulation, inspection and benchmarks.
// Commands only parse flags and call packages.
package main

import (
	"errors"
	"fmt"
	"os"
	"strings"

	"github.com/spf13/cobra"
)

// usageError marks errors in how kspaced was called (exit status 2); every
// other failure exits with status 1.
type usageError struct{ error }

func usagef(format string, args ...any) error { return usageError{fmt.Errorf(format, args...)} }

func main() {
	root := newRootCmd()
	err := root.Execute()
	if err == nil {
		return
	}
	fmt.Fprintln(os.Stderr, "kspaced:", err)
	var ue usageError
	if errors.As(err, &ue) || isCobraUsage(err) {
		os.Exit(2)
	}
	os.Exit(1)
}

func newRootCmd() *cobra.Command {
	root := &cobra.Command{
		Use:   "kspaced",
		Short: "Reconstruct accelerated MRI with diffusion posterior sampling",
		Long: `kspaced reconstructs undersampled multi-coil k-space (ISMRMRD, fastMRI HDF5,
BART .cfl, NumPy .npy) and writes the reconstruction and its uncertainty map as
DICOM series of the same study. Run 'kspaced serve' as a drop-folder service or
'kspaced recon FILE' for one file.`,
		SilenceUsage:  true,
		SilenceErrors: true,
	}
	root.SetFlagErrorFunc(func(_ *cobra.Command, err error) error { return usageError{err} })
	root.AddCommand(newServeCmd(), newReconCmd(), newRetrainCmd(), newSimulateCmd(), newInspectCmd(), newBenchCmd(), newConfigCmd(), newPriorCmd())
	return root
}

// isCobraUsage recognises cobra's own argument and command errors, which do
// not pass through the flag error hook.
func isCobraUsage(err error) bool {
	msg := err.Error()
	for _, p := range []string{"unknown command", "accepts ", "requires at least", "requires at most", "unknown flag", "unknown shorthand", "invalid argument"} {
		if strings.Contains(msg, p) {
			return true
		}
	}
	return false
}
