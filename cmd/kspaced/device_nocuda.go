//go:build !cuda

package main

import (
	"errors"
	"fmt"

	"github.com/kspaced/kspaced/mri"
	"github.com/kspaced/kspaced/priors"
	"github.com/kspaced/kspaced/priors/nn"
)

// cudaBuild reports whether this binary carries the CUDA backend.
const cudaBuild = false

// errNoCUDABuild is the answer to --device cuda in the default build.
var errNoCUDABuild = errors.New("device cuda: this kspaced was built without CUDA; build bin/kspaced-cuda with `make build-cuda` (docs/gpu.md) or use --device cpu")

// device is where the sampling commands run the network; the default
// build has only the CPU.
type device struct {
	Name    string
	Info    string
	Backend nn.Backend
}

// openDevice opens the named device ("cpu"; "cuda" needs the CUDA build).
func openDevice(name string) (*device, error) {
	switch name {
	case "cpu":
		return &device{Name: "cpu", Info: "CPU", Backend: nn.NewCPU()}, nil
	case "cuda":
		return nil, errNoCUDABuild
	}
	return nil, fmt.Errorf("device %q: want cpu or cuda", name)
}

func (d *device) Close() error { return nil }
func (d *device) Err() error   { return nil }

// UNet returns u: the CPU is where it was loaded.
func (d *device) UNet(u *priors.UNet) (*priors.UNet, error) { return u, nil }

// Operator returns mri.SENSE for one slice.
func (d *device) Operator(maps []complex64, coils, rows, cols int, mask []float32) (mri.Operator, error) {
	if err := mri.CheckSENSE(maps, coils, rows, cols, mask); err != nil {
		return nil, err
	}
	return mri.NewSENSE(maps, coils, rows, cols, mask), nil
}

func closeOperator(mri.Operator) error { return nil }
