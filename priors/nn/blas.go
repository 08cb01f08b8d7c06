package nn

// OpenBLAS supplies the CBLAS symbols that gonum's netlib wrapper calls; the
// flag lives here so that a plain `go build` of anything importing nn links.

/*
#cgo LDFLAGS: -lopenblas
int openblas_get_num_threads(void);
void openblas_set_num_threads(int);
*/
import "C"

import (
	"gonum.org/v1/gonum/blas"
	"gonum.org/v1/netlib/blas/netlib"
)

var sblas netlib.Implementation

func tr(t bool) blas.Transpose {
	if t {
		return blas.Trans
	}
	return blas.NoTrans
}

// BLASThreads reports how many threads OpenBLAS uses for one call.
func BLASThreads() int { return int(C.openblas_get_num_threads()) }

// SetBLASThreads changes OpenBLAS's thread count for later calls
// (process-wide).
func SetBLASThreads(n int) { C.openblas_set_num_threads(C.int(n)) }
