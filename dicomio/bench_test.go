package dicomio

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"math"
	"os"
	"runtime"
	"sort"
	"syscall"
	"testing"
	"time"
	"unsafe"

	"github.com/suyashkumar/dicom"
	"github.com/suyashkumar/dicom/pkg/uid"
)

// benchFile is a 256×256 16-bit MR image as WriteSeries writes it.
func benchFile(b *testing.B, rows, cols int) []byte {
	b.Helper()
	mean, _, _ := phantom(1, rows, cols)
	ref, err := WriteSeries(b.TempDir(), Study{InstanceUID: "1.2.3.4"}, OutputSeries{Kind: KindMean, Images: mean, Slices: 1, Rows: rows, Cols: cols}, WriteOptions{})
	if err != nil {
		b.Fatal(err)
	}
	raw, err := os.ReadFile(ref.Files[0])
	if err != nil {
		b.Fatal(err)
	}
	return raw
}

// BenchmarkRead compares this package's path (walk, metadata parse with
// SkipPixelData, own pixel decoding to float32) with the library decoding
// the pixels itself (no walk, no float conversion) on the same bytes.
func BenchmarkRead(b *testing.B) {
	for _, n := range []int{256, 512} {
		raw := benchFile(b, n, n)
		b.Run(fmt.Sprintf("dicomio-%d", n), func(b *testing.B) {
			b.SetBytes(int64(len(raw)))
			b.ReportAllocs()
			for i := 0; i < b.N; i++ {
				if _, err := decode(raw, ReadOptions{}); err != nil {
					b.Fatal(err)
				}
			}
		})
		b.Run(fmt.Sprintf("walk-only-%d", n), func(b *testing.B) {
			b.SetBytes(int64(len(raw)))
			b.ReportAllocs()
			for i := 0; i < b.N; i++ {
				if _, err := walkFile(raw, DefaultMaxFileSize); err != nil {
					b.Fatal(err)
				}
			}
		})
		b.Run(fmt.Sprintf("library-pixels-%d", n), func(b *testing.B) {
			b.SetBytes(int64(len(raw)))
			b.ReportAllocs()
			for i := 0; i < b.N; i++ {
				if _, err := dicom.Parse(bytes.NewReader(raw), int64(len(raw)), nil); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// BenchmarkHostileClaim: a 252-byte file whose OB element claims 64 MiB.
// The walker refuses it; the library alone allocates the claim first.
func BenchmarkHostileClaim(b *testing.B) {
	le := uid.ExplicitVRLittleEndian
	raw := part10(le, newEnc(le).hdr(0x0009, 0x1000, "OB", 64<<20).raw(1, 2, 3, 4).b)
	b.Run("dicomio", func(b *testing.B) {
		b.ReportAllocs()
		for i := 0; i < b.N; i++ {
			if _, err := decode(raw, ReadOptions{}); err == nil {
				b.Fatal("accepted")
			}
		}
	})
	b.Run("library-alone", func(b *testing.B) {
		b.ReportAllocs()
		for i := 0; i < b.N; i++ {
			// Returns no error: the truncation goes unnoticed.
			dicom.Parse(bytes.NewReader(raw), int64(len(raw)), nil)
		}
	})
}

// BenchmarkWriteSeries writes a 16-slice 256×256 series (files synced).
func BenchmarkWriteSeries(b *testing.B) {
	const slices, n = 16, 256
	mean, _, _ := phantom(slices, n, n)
	dir := b.TempDir()
	b.SetBytes(int64(2 * len(mean)))
	b.ReportAllocs()
	for i := 0; i < b.N; i++ {
		if _, err := WriteSeries(dir, Study{InstanceUID: "1.2.3.4"}, OutputSeries{Kind: KindMean, Images: mean, Slices: slices, Rows: n, Cols: n},
			WriteOptions{Time: time.Unix(0, 0)}); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkDecodeNative is the pixel conversion alone (256×256, 16 bit).
func BenchmarkDecodeNative(b *testing.B) {
	const n = 256
	src := make([]byte, 2*n*n)
	for i := range n * n {
		binary.LittleEndian.PutUint16(src[2*i:], uint16(i))
	}
	dst := make([]float32, n*n)
	pf := pixelFormat{rows: n, cols: n, frames: 1, samples: 1, bitsAllocated: 16, bitsStored: 12, high: 11, signed: true}
	fr := []frame{{slope: 0.5, intercept: -3}}
	b.SetBytes(int64(len(src)))
	for i := 0; i < b.N; i++ {
		decodeNative(dst, src, binary.LittleEndian, pf, fr)
	}
}

// threadCPU is this OS thread's CPU time (CLOCK_THREAD_CPUTIME_ID), which
// waiting for a core on a loaded machine does not inflate.
func threadCPU() time.Duration {
	var ts syscall.Timespec
	syscall.Syscall(syscall.SYS_CLOCK_GETTIME, 3, uintptr(unsafe.Pointer(&ts)), 0)
	return time.Duration(ts.Nano())
}

// BenchmarkReadSideBySide alternates this package's read and the library's
// own pixel-decoding parse call by call on one locked thread, so both see
// the same load; it reports minimum and median wall and thread-CPU times
// and the ratios library/dicomio.
func BenchmarkReadSideBySide(b *testing.B) {
	for _, n := range []int{256, 512} {
		raw := benchFile(b, n, n)
		b.Run(fmt.Sprintf("%d", n), func(b *testing.B) {
			runtime.LockOSThread()
			defer runtime.UnlockOSThread()
			var wall, cpu [2][]time.Duration
			for i := 0; i < b.N; i++ {
				for k := 0; k < 2; k++ {
					t0, c0 := time.Now(), threadCPU()
					var err error
					if k == 0 {
						_, err = decode(raw, ReadOptions{})
					} else {
						_, err = dicom.Parse(bytes.NewReader(raw), int64(len(raw)), nil)
					}
					cpu[k] = append(cpu[k], threadCPU()-c0)
					wall[k] = append(wall[k], time.Since(t0))
					if err != nil {
						b.Fatal(err)
					}
				}
			}
			stat := func(d []time.Duration) (mn, med float64) {
				s := append([]time.Duration(nil), d...)
				sort.Slice(s, func(i, j int) bool { return s[i] < s[j] })
				return float64(s[0].Microseconds()), float64(s[len(s)/2].Microseconds())
			}
			dw, dwm := stat(wall[0])
			lw, lwm := stat(wall[1])
			dc, _ := stat(cpu[0])
			lc, _ := stat(cpu[1])
			b.ReportMetric(dw, "dicomio-min-µs")
			b.ReportMetric(dwm, "dicomio-med-µs")
			b.ReportMetric(lw, "library-min-µs")
			b.ReportMetric(lwm, "library-med-µs")
			b.ReportMetric(dc, "dicomio-cpu-min-µs")
			b.ReportMetric(lc, "library-cpu-min-µs")
			b.ReportMetric(lc/math.Max(dc, 1), "cpu-ratio")
			b.ReportMetric(lwm/math.Max(dwm, 1), "median-ratio")
		})
	}
}
