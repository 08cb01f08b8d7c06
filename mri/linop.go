package mri

// Operator is a linear map A from complex vectors of length InLen to vectors
// of length OutLen. Solvers and samplers take an Operator, never raw arrays.
// Forward and Adjoint write into dst, which must not alias src, and allocate
// nothing per call.
type Operator interface {
	InLen() int
	OutLen() int
	Forward(dst, src []complex64) // dst = A src
	Adjoint(dst, src []complex64) // dst = Aᴴ src
}
