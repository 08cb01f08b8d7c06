//go:build !cgo

package kspaceio

import (
	"errors"
	"fmt"
)

// errNoHDF5 is returned for HDF5 files by builds without cgo: ISMRMRD and
// fastMRI are read through the HDF5 C library (Debian libhdf5-dev).
var errNoHDF5 = errors.New("HDF5 support needs cgo and libhdf5 (this binary was built with CGO_ENABLED=0)")

func hdf5Kind(string) (string, error) { return "", errNoHDF5 }

func readHDF5(path, _ string, _, _ int64) (*Volume, error) {
	return nil, fmt.Errorf("read %s: %w", path, errNoHDF5)
}

// WriteFastMRI needs the HDF5 C library; see the cgo build.
func WriteFastMRI(path string, _ *Volume) error { return fmt.Errorf("write %s: %w", path, errNoHDF5) }

// WriteReconstruction needs the HDF5 C library; see the cgo build.
func WriteReconstruction(path string, _ []float32, _, _, _ int, _ map[string]any) error {
	return fmt.Errorf("write %s: %w", path, errNoHDF5)
}
