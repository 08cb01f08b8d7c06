//go:build cuda

package device

import (
	"errors"
	"fmt"

	"github.com/kspaced/kspaced/internal/gpu"
	"github.com/kspaced/kspaced/mri"
	"github.com/kspaced/kspaced/priors/nn"
)

// CUDABuild reports whether this binary carries the CUDA backend.
const CUDABuild = true

// openGPU is the GPU the device layer uses (tests substitute the emulator).
var openGPU = func() (*gpu.Context, error) { return gpu.Open(0) }

// hardware is an open GPU: its context and the network backend on it.
type hardware struct {
	ctx  *gpu.Context
	cuda *nn.CUDA
}

// openCUDA opens the GPU. It fails with an explanation when the machine has
// none (the CUDA libraries are only loaded here, so a CUDA build runs the
// CPU device anywhere).
func openCUDA() (*hardware, nn.Backend, string, error) {
	ctx, err := openGPU()
	if err != nil {
		if errors.Is(err, gpu.ErrNoGPU) {
			return nil, nil, "", fmt.Errorf("%w (use --device cpu, or see docs/gpu.md)", err)
		}
		return nil, nil, "", err
	}
	be, err := nn.NewCUDA(ctx, nn.CUDAOptions{TF32: true})
	if err != nil {
		ctx.Close()
		return nil, nil, "", err
	}
	return &hardware{ctx: ctx, cuda: be}, be, ctx.Info().String(), nil
}

func (h *hardware) close() error { return errors.Join(h.cuda.Close(), h.ctx.Close()) }
func (h *hardware) err() error   { return h.cuda.Sync() }

func (h *hardware) operator(maps []complex64, coils, rows, cols int, mask []float32) (mri.Operator, error) {
	return mri.NewDeviceSENSE(h.ctx, maps, coils, rows, cols, mask)
}
