//go:build cuda

package main

import (
	"errors"
	"fmt"

	"github.com/kspaced/kspaced/internal/gpu"
	"github.com/kspaced/kspaced/mri"
	"github.com/kspaced/kspaced/priors"
	"github.com/kspaced/kspaced/priors/nn"
)

// cudaBuild reports whether this binary carries the CUDA backend.
const cudaBuild = true

// openGPU is the GPU the device layer uses (tests substitute the emulator).
var openGPU = func() (*gpu.Context, error) { return gpu.Open(0) }

// device is where the sampling commands (recon, serve, retrain) run the
// network and, on a GPU, the SENSE operator: --device / recon.device.
type device struct {
	Name    string // "cpu" or "cuda"
	Info    string // for logs
	Backend nn.Backend
	ctx     *gpu.Context
	cuda    *nn.CUDA
}

// openDevice opens the named device. "cuda" fails with an explanation when
// the machine has no usable GPU (the CUDA libraries are only loaded here,
// so a CUDA build runs --device cpu anywhere).
func openDevice(name string) (*device, error) {
	switch name {
	case "cpu":
		return &device{Name: "cpu", Info: "CPU", Backend: nn.NewCPU()}, nil
	case "cuda":
	default:
		return nil, fmt.Errorf("device %q: want cpu or cuda", name)
	}
	ctx, err := openGPU()
	if err != nil {
		if errors.Is(err, gpu.ErrNoGPU) {
			return nil, fmt.Errorf("device cuda: %w (use --device cpu, or see docs/gpu.md)", err)
		}
		return nil, fmt.Errorf("device cuda: %w", err)
	}
	be, err := nn.NewCUDA(ctx, nn.CUDAOptions{TF32: true})
	if err != nil {
		ctx.Close()
		return nil, fmt.Errorf("device cuda: %w", err)
	}
	return &device{Name: "cuda", Info: ctx.Info().String(), Backend: be, ctx: ctx, cuda: be}, nil
}

// Close releases the device.
func (d *device) Close() error {
	if d.cuda == nil {
		return nil
	}
	return errors.Join(d.cuda.Close(), d.ctx.Close())
}

// Err reports a failure the backend met while running (out of device
// memory, a kernel fault); check it after each reconstruction.
func (d *device) Err() error {
	if d.cuda == nil {
		return nil
	}
	return d.cuda.Sync()
}

// UNet returns u (loaded on the CPU, e.g. by priors.LoadUNet) on the
// device: u itself on the CPU, a copy with the same weights on a GPU.
func (d *device) UNet(u *priors.UNet) (*priors.UNet, error) {
	if d.cuda == nil {
		return u, nil
	}
	g, err := priors.NewUNetOn(d.Backend, u.Config(), 0)
	if err != nil {
		return nil, err
	}
	src, dst := u.Params(), g.Params()
	if len(src) != len(dst) {
		return nil, fmt.Errorf("device cuda: U-Net has %d parameters on the CPU and %d on the GPU", len(src), len(dst))
	}
	cpu := u.Backend()
	for i, p := range src {
		if p.Name != dst[i].Name || p.Len() != dst[i].Len() {
			return nil, fmt.Errorf("device cuda: parameter %d is %s on the CPU, %s on the GPU", i, p.Name, dst[i].Name)
		}
		v := make([]float32, p.Len())
		cpu.Download(v, p.Value)
		d.Backend.Upload(dst[i].Value, v)
	}
	if err := d.cuda.Sync(); err != nil {
		return nil, err
	}
	return g, nil
}

// Operator returns the SENSE operator of one slice on the device:
// mri.SENSE on the CPU, mri.DeviceSENSE (maps and FFTs on the GPU) with
// CUDA. Close it with closeOperator.
func (d *device) Operator(maps []complex64, coils, rows, cols int, mask []float32) (mri.Operator, error) {
	if d.cuda == nil {
		if err := mri.CheckSENSE(maps, coils, rows, cols, mask); err != nil {
			return nil, err
		}
		return mri.NewSENSE(maps, coils, rows, cols, mask), nil
	}
	return mri.NewDeviceSENSE(d.ctx, maps, coils, rows, cols, mask)
}

// closeOperator releases an operator from Operator.
func closeOperator(op mri.Operator) error {
	if c, ok := op.(interface{ Close() error }); ok {
		return c.Close()
	}
	return nil
}
