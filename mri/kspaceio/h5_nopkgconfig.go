//go:build cgo && nopkgconfig

package kspaceio

// Without pkg-config (-tags nopkgconfig, e.g. a GPU machine with a copied
// sysroot): Debian's paths, which CGO_CFLAGS/CGO_LDFLAGS can extend.

// #cgo CFLAGS: -I/usr/include/hdf5/serial
// #cgo LDFLAGS: -L/usr/lib/x86_64-linux-gnu/hdf5/serial -lhdf5
import "C"
