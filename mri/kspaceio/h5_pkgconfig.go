//go:build cgo && !nopkgconfig

package kspaceio

// HDF5's compile and link flags come from pkg-config. hdf5-serial.pc is
// Debian's libhdf5-dev; its hdf5.pc is an alternative that turns into the
// MPI build once libhdf5-openmpi-dev is installed.

// #cgo pkg-config: hdf5-serial
import "C"
