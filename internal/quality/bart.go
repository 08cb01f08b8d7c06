package quality

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"time"

	"github.com/kspaced/kspaced/mri/kspaceio"
	"github.com/kspaced/kspaced/pipeline"
)

// bartRuns reconstructs the file with `bart pics -l1 -r λ` for each λ, on the
// k-space and ESPIRiT maps pipeline.Prepare makes (prewhitened, scaled so
// the zero-filled image peaks at 1 as the pipeline's classical methods get
// it; -w 1 keeps BART from rescaling), with the config's iteration count.
// Slices are cropped to the recon matrix as the pipeline crops its outputs.
func (h *harness) bartRuns(ctx context.Context, path string, lambdas []float64) ([]*recon, error) {
	start := time.Now()
	v, err := kspaceio.Read(path)
	if err != nil {
		return nil, err
	}
	rows, cols := v.ImageSize()
	out := make([]*recon, len(lambdas))
	for i := range out {
		out[i] = &recon{}
	}
	dir, err := os.MkdirTemp(h.tmp, "bart-")
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(dir)
	var prep time.Duration
	for si := range v.Slices {
		t0 := time.Now()
		p, err := pipeline.Prepare(ctx, &v.Slices[si], h.cfg.Recon.CoilMaps)
		if err != nil {
			return nil, fmt.Errorf("slice %d: %w", si, err)
		}
		s := p.Scan
		y := make([]complex64, len(s.KSpace))
		inv := complex(float32(1/p.Peak), 0)
		for i, v := range s.KSpace {
			y[i] = v * inv
		}
		// BART [x y z coil], first fastest, is our [coil][row][col] with x
		// the column index: the same memory order.
		dims := []int{s.Cols, s.Rows, 1, s.Coils}
		if err := kspaceio.WriteCFL(filepath.Join(dir, "k"), dims, y); err != nil {
			return nil, err
		}
		if err := kspaceio.WriteCFL(filepath.Join(dir, "s"), dims, p.Maps); err != nil {
			return nil, err
		}
		if si == 0 {
			prep = time.Since(start) // read and the first slice's preparation
		} else {
			prep += time.Since(t0)
		}
		for li, lam := range lambdas {
			t1 := time.Now()
			cmd := exec.CommandContext(ctx, h.opt.Bart, "pics", "-w", "1", "-i", strconv.Itoa(h.cfg.Recon.Iterations),
				"-l1", "-r", strconv.FormatFloat(lam, 'g', -1, 64), "k", "s", "x")
			cmd.Dir = dir
			// BART's OpenMP threads spin-wait: on a shared machine one is fastest.
			cmd.Env = append(os.Environ(), "OMP_NUM_THREADS=1")
			if b, err := cmd.CombinedOutput(); err != nil {
				return nil, fmt.Errorf("bart pics: %v\n%s", err, b)
			}
			_, x, err := kspaceio.ReadCFL(filepath.Join(dir, "x"))
			if err != nil {
				return nil, err
			}
			if len(x) != s.Rows*s.Cols {
				return nil, fmt.Errorf("bart pics wrote %d values for a %d×%d image", len(x), s.Rows, s.Cols)
			}
			for i := range x {
				x[i] *= complex(float32(p.Peak), 0)
			}
			out[li].img = append(out[li].img, cropCenter(x, s.Rows, s.Cols, rows, cols)...)
			out[li].seconds += time.Since(t1).Seconds()
		}
	}
	for _, r := range out {
		r.seconds += prep.Seconds()
	}
	return out, nil
}

func (h *harness) bart(ctx context.Context, path string, lambdas []float64) (*recon, error) {
	r, err := h.bartRuns(ctx, path, lambdas)
	if err != nil {
		return nil, err
	}
	return r[0], nil
}

// cropCenter keeps the centred rows×cols block of an r×c image, as the
// pipeline crops its outputs to the recon matrix.
func cropCenter(src []complex64, r, c, rows, cols int) []complex64 {
	if r == rows && c == cols {
		return src
	}
	dst := make([]complex64, 0, rows*cols)
	r0, c0 := (r-rows)/2, (c-cols)/2
	for i := 0; i < rows; i++ {
		dst = append(dst, src[(r0+i)*c+c0:(r0+i)*c+c0+cols]...)
	}
	return dst
}
