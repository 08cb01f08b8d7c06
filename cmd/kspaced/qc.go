package main

import (
	"encoding/json"
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/spf13/cobra"

	"github.com/kspaced/kspaced/configs"
	"github.com/kspaced/kspaced/pipeline"
)

func newQCCmd() *cobra.Command {
	var (
		rf     reconFlags
		asJSON bool
	)
	cmd := &cobra.Command{
		Use:   "qc FILE...",
		Short: "Print the QC measures and flags of job outputs or of k-space inputs",
		Long: `qc prints the quality-control measures (data consistency against the noise,
prior typicality, uncertainty) and flags of each FILE: an output folder (its
report.json), or a k-space file, which is reconstructed classically (the
configured method, cg-sense for sampling methods) and measured. Typicality is
measured when a prior is set (--prior or recon.sampler.prior).`,
		Args: cobra.MinimumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			cfg, err := rf.config(cmd)
			if err != nil {
				return err
			}
			var all []*pipeline.QCSeries
			failed := 0
			for _, p := range args {
				series, err := qcOf(cmd, p, cfg)
				if err != nil {
					fmt.Fprintln(cmd.ErrOrStderr(), "kspaced:", err)
					failed++
					continue
				}
				all = append(all, series...)
			}
			if asJSON {
				enc := json.NewEncoder(cmd.OutOrStdout())
				enc.SetIndent("", "  ")
				if err := enc.Encode(all); err != nil {
					return err
				}
			} else {
				for _, s := range all {
					printQC(cmd.OutOrStdout(), s)
				}
			}
			if failed > 0 {
				return fmt.Errorf("%d of %d could not be measured", failed, len(args))
			}
			return nil
		},
	}
	cmd.Flags().StringVar(&rf.cfgPath, "config", "", "YAML config over the defaults")
	cmd.Flags().StringVar(&rf.method, "method", "", "classical method that reconstructs k-space inputs")
	cmd.Flags().StringVar(&rf.prior, "prior", "", "checkpoint whose typicality is measured (its CKPT.qc.json calibrates it)")
	cmd.Flags().BoolVar(&asJSON, "json", false, "print JSON")
	return cmd
}

// qcOf reads an output folder's report or measures a k-space file.
func qcOf(cmd *cobra.Command, path string, cfg *configs.Config) ([]*pipeline.QCSeries, error) {
	if st, err := os.Stat(path); err == nil && st.IsDir() {
		rep, err := pipeline.ReadReport(path)
		if err != nil {
			return nil, err
		}
		if rep.QC == nil {
			return nil, fmt.Errorf("%s: the report holds no QC (written before kspaced measured it); run kspaced qc on the input", path)
		}
		return rep.QC.Series, nil
	}
	s, err := pipeline.MeasureFile(cmd.Context(), path, cfg)
	if err != nil {
		return nil, err
	}
	return []*pipeline.QCSeries{s}, nil
}

// printQC writes one series' QC for people.
func printQC(w io.Writer, s *pipeline.QCSeries) {
	status := "ok"
	if s.Flagged > 0 {
		status = fmt.Sprintf("CHECK (%d of %d slices flagged)", s.Flagged, s.Slices)
	}
	fmt.Fprintf(w, "%s: %s\n", s.Input, status)
	for _, f := range s.Flags {
		fmt.Fprintf(w, "  flag %s: %s\n", f.Code, f.Reason)
	}
	for i, r := range s.PerSlice {
		if r == nil {
			fmt.Fprintf(w, "  slice %d: not measured\n", i)
			continue
		}
		var parts []string
		if dc := r.DataConsistency; dc != nil {
			parts = append(parts, fmt.Sprintf("data consistency %.3f (expected %.3f, flag above %.3f; %d samples, acceleration %.1f, line order %.2f, %d empty lines)",
				dc.Ratio, dc.Expected, dc.Threshold, dc.Samples, dc.Acceleration, dc.LineOrder, dc.EmptyLines))
		}
		if n := r.Noise; n != nil {
			parts = append(parts, fmt.Sprintf("noise %.2f × declared (%s)", n.Ratio, n.Method))
		}
		if m := r.LineMotion; m != nil {
			parts = append(parts, fmt.Sprintf("residual explained by shifted lines %.2g (flag above %.2g)", m.Explained, m.Threshold))
		}
		if e := r.EdgeSparsity; e != nil {
			parts = append(parts, fmt.Sprintf("edge sparsity %.2f (flag above %.2f)", e.Score, e.Threshold))
		}
		if t := r.Typicality; t != nil {
			if t.Threshold > 0 {
				parts = append(parts, fmt.Sprintf("typicality %.4f (percentile %.1f, flag above %.4f)", t.Score, t.Percentile, t.Threshold))
			} else {
				parts = append(parts, fmt.Sprintf("typicality %.4f (uncalibrated)", t.Score))
			}
		}
		if u := r.Uncertainty; u != nil {
			parts = append(parts, fmt.Sprintf("uncertainty %.3f of the signal", u.Relative))
		}
		var flags []string
		for _, f := range r.Flags {
			flags = append(flags, f.Code)
		}
		fl := "no flags"
		if len(flags) > 0 {
			fl = "FLAGS " + strings.Join(flags, ", ")
		}
		fmt.Fprintf(w, "  slice %d: %s; %s\n", i, fl, strings.Join(parts, "; "))
		for _, n := range r.Notes {
			fmt.Fprintf(w, "    note: %s\n", n)
		}
	}
	for _, wn := range s.Warnings {
		fmt.Fprintf(w, "  warning: %s\n", wn)
	}
}
