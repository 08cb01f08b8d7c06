package kspaceio

import (
	"errors"
	"fmt"
	"io"
	"os"
	"runtime"
	"syscall"
)

// DefaultMaxBytes bounds the k-space one file may bring into memory unless
// Limits says otherwise: a fastMRI knee volume (35 slices × 15 coils ×
// 640 × 368 complex64) is about 1 GB.
const DefaultMaxBytes = 2 << 30

// maxCompression bounds how many times larger than its stored bytes a
// compressed HDF5 dataset may announce itself. Deflated k-space, even
// zero-filled at high acceleration, stays well below it; a gzip bomb does
// not.
const maxCompression = 64

// Limits bound what one read may allocate; the zero value means defaults.
type Limits struct {
	// MaxBytes bounds the k-space (complex64 in memory, with masks) a file
	// may declare, and, for HDF5, the decompressed bytes of all datasets
	// read; checked before anything is allocated. 0 means DefaultMaxBytes.
	MaxBytes int64
}

func (l Limits) maxBytes() int64 {
	if l.MaxBytes <= 0 {
		return DefaultMaxBytes
	}
	return l.MaxBytes
}

// openRegular opens path for reading only if it is a regular file (a FIFO
// would block, a device never ends).
func openRegular(path string) (*os.File, error) {
	st, err := os.Stat(path)
	if err != nil {
		return nil, err
	}
	if !st.Mode().IsRegular() {
		return nil, fmt.Errorf("read %s: not a regular file", path)
	}
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	if st2, err := f.Stat(); err != nil || !st2.Mode().IsRegular() || !os.SameFile(st, st2) {
		f.Close()
		return nil, fmt.Errorf("read %s: changed while opening", path)
	}
	return f, nil
}

// sparseFloor is the size below which holes are not worth refusing.
const sparseFloor = 16 << 20

// checkSparse refuses files whose data are mostly holes: their size on disk
// is tiny, but what they declare is read as zeros into memory. It counts
// the data extents with SEEK_DATA/SEEK_HOLE (Linux); where those are not
// supported the check is skipped.
func checkSparse(f *os.File, size int64) error {
	if size < sparseFloor || runtime.GOOS != "linux" {
		return nil
	}
	const seekData, seekHole = 3, 4 // lseek(2) SEEK_DATA, SEEK_HOLE
	var stored int64
	for off := int64(0); off < size; {
		d, err := f.Seek(off, seekData)
		if errors.Is(err, syscall.ENXIO) {
			break // no data after off
		}
		if err != nil {
			return nil // not supported here
		}
		h, err := f.Seek(d, seekHole)
		if err != nil || h <= d {
			return nil
		}
		stored += h - d
		off = h
	}
	if _, err := f.Seek(0, io.SeekStart); err != nil {
		return err
	}
	if stored < size/2 {
		return fmt.Errorf("the file is sparse: %d bytes long but only %d stored on disk (copy it without holes)", size, stored)
	}
	return nil
}
