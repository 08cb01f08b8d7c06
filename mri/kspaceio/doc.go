// Package kspaceio reads and writes the k-space file formats kspaced
// exchanges with other tools: ISMRMRD and fastMRI HDF5 (through the HDF5 C
// library), NumPy .npy and BART .cfl/.hdr.
package kspaceio
