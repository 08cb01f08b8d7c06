//go:build cuda

package gpu

import "fmt"

// Block is the thread-block size of the project's kernels. Reduction
// kernels rely on it: their shared-memory arrays have Block entries (the
// sources define BLOCK to the same value, which the tests check).
const Block = 256

// maxGrid caps the blocks of a grid-stride launch: beyond a few waves of
// the largest GPUs more blocks only add scheduling overhead.
const maxGrid = 8192

// Grid1D is the grid for a grid-stride kernel over n items with Block
// threads per block.
func Grid1D(n int) Dim3 {
	if n <= 0 {
		return Dim3{}
	}
	return D1(min((n+Block-1)/Block, maxGrid))
}

// GridRows is the grid for a kernel that gives each of rows items (rows,
// channels, groups) one block.
func GridRows(rows int) (Dim3, error) {
	if rows < 0 || rows > maxInt32 {
		return Dim3{}, fmt.Errorf("cuda: %d blocks", rows)
	}
	return D1(rows), nil
}
