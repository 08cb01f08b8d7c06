// Package fftw wraps FFTW's single-precision batched 2-D transform for the
// side-by-side benchmarks in package fft. It is compiled only with the build
// tag fftw (cgo, Debian libfftw3-dev); without the tag it is empty, so the
// default build needs neither cgo nor FFTW.
package fftw
