package main

import (
	"bytes"
	"fmt"
	"syscall"
	"testing"

	"github.com/spf13/cobra"
)

// Exit status 2 is for usage errors only; a failure — a panic, a system
// error that says "invalid argument" — is 1 (issue 20).
func TestExitStatus(t *testing.T) {
	cases := []struct {
		args []string
		want int
	}{
		{[]string{"boom"}, 1},
		{[]string{"einval"}, 1},
		{[]string{"nosuchcommand"}, 2},
		{[]string{"inspect"}, 2},
		{[]string{"serve", "--workers", "x"}, 2},
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
