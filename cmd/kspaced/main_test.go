package main

import (
	"bytes"
	"fmt"
	"strings"
	"syscall"
	"testing"

	"github.com/spf13/cobra"
)

// Usage errors exit with 64 (EX_USAGE), so that Go's own status 2 for a
// crash stands apart; a failure — a panic, a system error that says
// "invalid argument" — is 1 (issue 20).
func TestExitStatus(t *testing.T) {
	cases := []struct {
		args []string
		want int
	}{
		{[]string{"boom"}, 1},
		{[]string{"einval"}, 1},
		{[]string{"nosuchcommand"}, 64},
		{[]string{"inspect"}, 64},
		{[]string{"serve", "--workers", "x"}, 64},
		{[]string{"ok"}, 0},
	}
	for _, c := range cases {
		root := newRootCmd()
		root.AddCommand(
			&cobra.Command{Use: "boom", RunE: func(*cobra.Command, []string) error { panic("index out of range") }},
			&cobra.Command{Use: "einval", RunE: func(*cobra.Command, []string) error {
				return fmt.Errorf("read scan.h5: %w", syscall.EINVAL)
			}},
			&cobra.Command{Use: "ok", RunE: func(*cobra.Command, []string) error { return nil }},
		)
		var stderr bytes.Buffer
		if got := execute(root, c.args, &stderr); got != c.want {
			t.Errorf("kspaced %v: exit %d, want %d (%s)", c.args, got, c.want, stderr.String())
		}
	}
}

// `kspaced --help` names the exit statuses, the crash one included.
func TestHelpNamesExitStatuses(t *testing.T) {
	code, out := runBin(t, "--help")
	for _, s := range []string{"Exit status:", "64 usage error", "kspaced crashed"} {
		if code != 0 || !strings.Contains(out, s) {
			t.Errorf("kspaced --help: exit %d, lacks %q:\n%s", code, s, out)
		}
	}
}
