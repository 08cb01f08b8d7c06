package fft_test

import (
	"os/exec"
	"path/filepath"
	"slices"
	"testing"

	"github.com/kspaced/kspaced/fft"
	"github.com/kspaced/kspaced/internal/testutil"
	"github.com/kspaced/kspaced/mri/kspaceio"
)

// BART's convention, checked against numpy (fftshift∘fft2∘ifftshift, norm
// "ortho") on 8×8, 7×9, 13×17 and 6×5 arrays: `bart fft -u 3` is exactly our
// Forward and `bart fft -u -i 3` our Inverse, centred also for odd sizes;
// without -u BART does not normalise (a factor √N), and -n drops the centring.
// BART's first dimension is the fastest, our last index, so a [batch][rows][cols]
// array is the BART array [cols rows batch], and flag 3 (bits 0 and 1)
// transforms cols and rows.
func TestAgainstBART(t *testing.T) {
	t.Parallel()
	bart := testutil.Tool(t, "bart")
	dir := t.TempDir()
	for _, sz := range []size{{320, 320, 2}, {368, 640, 1}, {13, 17, 3}, {97, 101, 1}, {1, 7, 2}} {
		x := random(sz.rows*sz.cols*sz.batch, 11)
		in := filepath.Join(dir, "in")
		if err := kspaceio.WriteCFL(in, []int{sz.cols, sz.rows, sz.batch}, x); err != nil {
			t.Fatal(err)
		}
		for _, inv := range []bool{false, true} {
			args := []string{"fft", "-u"}
			if inv {
				args = append(args, "-i")
			}
			out := filepath.Join(dir, "out")
			cmd := exec.Command(bart, append(args, "3", in, out)...)
			if msg, err := cmd.CombinedOutput(); err != nil {
				t.Fatalf("%v: %v\n%s", cmd.Args, err, msg)
			}
			dims, want, err := kspaceio.ReadCFL(out)
			if err != nil {
				t.Fatal(err)
			}
			wantDims := []int{sz.cols, sz.rows, sz.batch}
			for len(wantDims) > 1 && wantDims[len(wantDims)-1] == 1 {
				wantDims = wantDims[:len(wantDims)-1]
			}
			if !slices.Equal(dims, wantDims) {
				t.Fatalf("%v: bart wrote dims %v, want %v", sz, dims, wantDims)
			}
			got := make([]complex64, len(x))
			if inv {
				fft.Inverse(got, x, sz.rows, sz.cols)
			} else {
				fft.Forward(got, x, sz.rows, sz.cols)
			}
			e := relErr(got, widen(want))
			if e > 1e-5 || e != e {
				t.Errorf("%d×%d×%d inverse=%v: relative error to bart %.3g", sz.batch, sz.rows, sz.cols, inv, e)
			}
			t.Logf("%d×%d×%d inverse=%v: relative error to bart %.2g", sz.batch, sz.rows, sz.cols, inv, e)
		}
	}
}
