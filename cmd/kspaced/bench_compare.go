package main

import (
	"fmt"
	"os"

	"github.com/spf13/cobra"

	"github.com/kspaced/kspaced/internal/quality"
)

func newBenchCompareCmd() *cobra.Command {
	var a, b string
	cmd := &cobra.Command{
		Use:   "compare A.json B.json [--a-method M] [--b-method M]",
		Short: "Pair two `bench quality --json` results scan by scan: method B minus method A per test folder",
		Long: `compare reads two files that bench quality --json wrote (or one file
twice) and, per test folder present in both, prints method B's PSNR and
SSIM minus method A's on the scans both scored, as mean ± standard error,
with how many scans B wins and B's coverage. Pairing cancels what the scans
share, so it tells two priors (or a prior and L1-wavelet) apart on fewer
scans than comparing folder means does.`,
		Args: cobra.ExactArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			as, err := quality.LoadCells(args[0])
			if err != nil {
				return err
			}
			bs, err := quality.LoadCells(args[1])
			if err != nil {
				return err
			}
			pairs := quality.Paired(as, a, bs, b)
			if len(pairs) == 0 {
				return fmt.Errorf("no test folder has scans scored by %s in %s and by %s in %s", a, args[0], b, args[1])
			}
			quality.PairedMarkdown(os.Stdout, pairs, a+" ("+args[0]+")", b+" ("+args[1]+")")
			return nil
		},
	}
	cmd.Flags().StringVar(&a, "a-method", "l1-wavelet", "method of A.json")
	cmd.Flags().StringVar(&b, "b-method", "mmps", "method of B.json")
	return cmd
}
