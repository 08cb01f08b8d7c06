//go:build cuda

package gpu

import "fmt"

type blasImpl interface {
	sgemm(ta, tb bool, m, n, k int, alpha float32, a Ptr, lda int, b Ptr, ldb int, beta float32, c Ptr, ldc int) error
	sgemmBatched(ta, tb bool, m, n, k int, alpha float32, a Ptr, lda, sa int, b Ptr, ldb, sb int, beta float32, c Ptr, ldc, sc, batch int) error
	version() (int, error)
	destroy() error
}

// BLAS is a cuBLAS handle on the context's stream.
type BLAS struct {
	ctx  *Context
	impl blasImpl
	tf32 bool
}

// NewBLAS creates a cuBLAS handle. With tf32, single-precision GEMMs may use
// TF32 tensor cores (10-bit mantissa products, FP32 accumulation).
func (c *Context) NewBLAS(tf32 bool) (*BLAS, error) {
	impl, err := c.drv.newBLAS(tf32)
	if err != nil {
		return nil, err
	}
	return &BLAS{ctx: c, impl: impl, tf32: tf32}, nil
}

// TF32 reports whether the handle uses TF32 tensor cores.
func (b *BLAS) TF32() bool { return b.tf32 }

// Version is cuBLAS's version number (e.g. 120304).
func (b *BLAS) Version() (int, error) { return b.impl.version() }

// Close destroys the handle.
func (b *BLAS) Close() error { return b.impl.destroy() }

// Gemm is BLAS sgemm on row-major matrices, as the CPU backend calls it:
// C = alpha·op(A)·op(B) + beta·C with op(A) m×k, op(B) k×n, leading
// dimensions counted in row-major terms. cuBLAS is column-major; a row-major
// matrix is the transpose of the same memory read column-major, so the call
// becomes Cᵀ = op(B)ᵀ·op(A)ᵀ: operands swapped, flags unchanged.
func (b *BLAS) Gemm(transA, transB bool, m, n, k int, alpha float32, a Ptr, lda int, bm Ptr, ldb int, beta float32, c Ptr, ldc int) error {
	if err := checkRowMajor(transA, transB, m, n, k, lda, ldb, ldc); err != nil {
		return err
	}
	if m == 0 || n == 0 {
		return nil
	}
	return b.impl.sgemm(transB, transA, n, m, k, alpha, bm, ldb, a, lda, beta, c, ldc)
}

// GemmStridedBatched is Gemm on batch matrix triples, the i-th at a+i·sa,
// b+i·sb, c+i·sc (strides in elements; 0 reuses one matrix for all).
func (b *BLAS) GemmStridedBatched(transA, transB bool, m, n, k int, alpha float32, a Ptr, lda, sa int, bm Ptr, ldb, sb int, beta float32, c Ptr, ldc, sc, batch int) error {
	if err := checkRowMajor(transA, transB, m, n, k, lda, ldb, ldc); err != nil {
		return err
	}
	if m == 0 || n == 0 || batch == 0 {
		return nil
	}
	return b.impl.sgemmBatched(transB, transA, n, m, k, alpha, bm, ldb, sb, a, lda, sa, beta, c, ldc, sc, batch)
}

// checkRowMajor validates row-major GEMM arguments as the reference BLAS
// does; k == 0 is left to the caller (cuBLAS then scales C by beta).
func checkRowMajor(ta, tb bool, m, n, k, lda, ldb, ldc int) error {
	ca, cb := k, n // columns of A and B as stored
	if ta {
		ca = m
	}
	if tb {
		cb = k
	}
	switch {
	case m < 0 || n < 0 || k < 0:
		return fmt.Errorf("cuda: gemm sizes %d×%d×%d", m, n, k)
	case lda < max(1, ca) || ldb < max(1, cb) || ldc < max(1, n):
		return fmt.Errorf("cuda: gemm %d×%d×%d (transA %v, transB %v) with leading dimensions %d, %d, %d", m, n, k, ta, tb, lda, ldb, ldc)
	case m > maxInt32 || n > maxInt32 || k > maxInt32 || lda > maxInt32 || ldb > maxInt32 || ldc > maxInt32:
		return fmt.Errorf("cuda: gemm dimensions beyond 32 bits")
	}
	return nil
}

const maxInt32 = 1<<31 - 1
