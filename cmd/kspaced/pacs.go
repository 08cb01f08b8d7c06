package main

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"os/signal"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/spf13/cobra"

	"github.com/kspaced/kspaced/configs"
	"github.com/kspaced/kspaced/daemon"
	"github.com/kspaced/kspaced/pacs"
)

// pacsService is what serve runs beside the daemon: run until its context
// ends (resident), or drain once after the jobs are done (--once).
type pacsService struct {
	run, drain func(context.Context)
}

// withPACS adds the PACS delivery queue (when the configuration names
// destinations) and, unless once, the C-STORE listener (when
// pacs.listen.addr is set) to a daemon's options. The listener binds here,
// so a taken port fails the start.
func withPACS(o *daemon.Options, log *slog.Logger, once bool) (svc pacsService, err error) {
	svc.drain = func(context.Context) {}
	cfg := o.Config
	spool, err := filepath.Abs(cfg.Daemon.Spool)
	if err != nil {
		return svc, err
	}
	var runs []func(context.Context)
	if len(cfg.PACS.Destinations) > 0 {
		q, err := pacs.NewQueue(spool, cfg.PACS, log)
		if err != nil {
			return svc, err
		}
		o.Published = q.Enqueue
		o.Collectors = append(o.Collectors, q.Collectors()...)
		names := make([]string, len(cfg.PACS.Destinations))
		for i, d := range cfg.PACS.Destinations {
			names[i] = d.Name
		}
		log.Info("delivering results to PACS", "destinations", strings.Join(names, ","))
		runs = append(runs, q.Run)
		svc.drain = q.Drain
	}
	if l := cfg.PACS.Listen; l.Addr != "" && !once {
		r, err := pacs.NewReceiver(spool, log)
		if err != nil {
			return svc, err
		}
		r.Quiet = l.QuietPeriod
		r.Recover()
		ln, err := net.Listen("tcp", l.Addr)
		if err != nil {
			return svc, fmt.Errorf("pacs.listen.addr: %w", err)
		}
		o.Collectors = append(o.Collectors, r.Collectors()...)
		log.Info("DICOM listener accepting studies", "addr", ln.Addr().String(), "ae_title", l.AETitle, "callers", strings.Join(l.Callers, ","))
		srv := r.Server(l, cfg.PACS.Timeout)
		runs = append(runs, func(ctx context.Context) {
			if err := srv.Serve(ctx, ln); err != nil {
				log.Error("DICOM listener stopped", "err", err)
			}
			r.Flush()
		})
	}
	svc.run = func(ctx context.Context) {
		var wg sync.WaitGroup
		for _, r := range runs {
			wg.Add(1)
			go func() { defer wg.Done(); r(ctx) }()
		}
		wg.Wait()
	}
	return svc, nil
}

func newPACSCmd() *cobra.Command {
	var cfgPath string
	cmd := &cobra.Command{
		Use:   "pacs",
		Short: "Check PACS destinations and send DICOM to them",
		Long: `pacs reaches the destinations configured under pacs.destinations (docs/pacs.md):
'echo NAME' checks one answers (C-ECHO, or a DICOMweb query), 'send DIR --to NAME'
sends every DICOM file under DIR now, outside the daemon's delivery queue.`,
	}
	cmd.PersistentFlags().StringVar(&cfgPath, "config", "", "YAML config naming the destinations (section pacs)")
	dest := func(name string) (configs.PACS, configs.Destination, error) {
		c, err := configs.Load(cfgPath)
		if err != nil {
			return configs.PACS{}, configs.Destination{}, usageError{err}
		}
		d, ok := c.PACS.Destination(name)
		if !ok {
			var names []string
			for _, d := range c.PACS.Destinations {
				names = append(names, d.Name)
			}
			return c.PACS, d, usagef("no destination %q in pacs.destinations (configured: %s)", name, strings.Join(names, ", "))
		}
		return c.PACS, d, nil
	}
	echo := &cobra.Command{
		Use:   "echo NAME",
		Short: "Check that a destination answers (C-ECHO or DICOMweb)",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			p, d, err := dest(args[0])
			if err != nil {
				return err
			}
			start := time.Now()
			ctx, stop := signal.NotifyContext(cmd.Context(), syscall.SIGINT, syscall.SIGTERM)
			defer stop()
			if err := pacs.Echo(ctx, p, d); err != nil {
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "%s answered in %.0f ms\n", d.Name, time.Since(start).Seconds()*1000)
			return nil
		},
	}
	var to string
	send := &cobra.Command{
		Use:   "send DIR --to NAME",
		Short: "Send every DICOM file under DIR to a destination",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if to == "" {
				return usagef("--to NAME is required")
			}
			p, d, err := dest(to)
			if err != nil {
				return err
			}
			files, err := pacs.DICOMFiles(args[0])
			if err != nil {
				return err
			}
			if len(files) == 0 {
				return fmt.Errorf("no DICOM files under %s", args[0])
			}
			start := time.Now()
			ctx, stop := signal.NotifyContext(cmd.Context(), syscall.SIGINT, syscall.SIGTERM)
			defer stop()
			n, err := pacs.Send(ctx, p, d, files)
			fmt.Fprintf(cmd.OutOrStdout(), "%s stored %d of %d instances in %.1f s\n", d.Name, n, len(files), time.Since(start).Seconds())
			if err != nil {
				if detail := pacs.PeerDetail(err); detail != "" {
					fmt.Fprintf(cmd.ErrOrStderr(), "%s said: %s\n", d.Name, detail)
				}
				return err
			}
			return nil
		},
	}
	send.Flags().StringVar(&to, "to", "", "destination name from pacs.destinations")
	cmd.AddCommand(echo, send)
	return cmd
}
