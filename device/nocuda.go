//go:build !cuda

package device

import (
	"errors"

	"github.com/kspaced/kspaced/mri"
	"github.com/kspaced/kspaced/priors/nn"
)

// CUDABuild reports whether this binary carries the CUDA backend.
const CUDABuild = false

// ErrNoCUDABuild is the answer to "cuda" in the default build.
var ErrNoCUDABuild = errors.New("this kspaced was built without CUDA; build bin/kspaced-cuda with `make build-cuda` (docs/gpu.md) or use --device cpu")

// hardware is the GPU state; the default build has none.
type hardware struct{}

func openCUDA() (*hardware, nn.Backend, string, error) { return nil, nil, "", ErrNoCUDABuild }

func (*hardware) close() error { return nil }
func (*hardware) err() error   { return nil }
func (*hardware) operator([]complex64, int, int, int, []float32) (mri.Operator, error) {
	return nil, ErrNoCUDABuild
}
