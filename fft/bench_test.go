package fft_test

import (
	"fmt"
	"testing"

	"github.com/kspaced/kspaced/fft"
)

// benchSizes are the MRI batches the brief asks for: 16 coils of 320×320 and
// of 640×368 (rows×cols).
var benchSizes = []size{{320, 320, 16}, {640, 368, 16}}

func BenchmarkFFT(b *testing.B) {
	for _, sz := range benchSizes {
		for _, inv := range []bool{false, true} {
			b.Run(fmt.Sprintf("%dx%dx%d/%s", sz.batch, sz.rows, sz.cols, dirName(inv)), func(b *testing.B) {
				p, err := fft.NewPlan(sz.rows, sz.cols)
				if err != nil {
					b.Fatal(err)
				}
				x := random(sz.rows*sz.cols*sz.batch, 1)
				y := make([]complex64, len(x))
				f := p.Forward
				if inv {
					f = p.Inverse
				}
				f(y, x)
				b.SetBytes(int64(8 * len(x)))
				b.ReportAllocs()
				b.ResetTimer()
				for b.Loop() {
					f(y, x)
				}
			})
		}
	}
}

// A single image, split over cores by row and column blocks.
func BenchmarkFFTSingle(b *testing.B) {
	for _, sz := range []size{{320, 320, 1}, {640, 368, 1}} {
		b.Run(fmt.Sprintf("%dx%d", sz.rows, sz.cols), func(b *testing.B) {
			x := random(sz.rows*sz.cols, 1)
			y := make([]complex64, len(x))
			fft.Forward(y, x, sz.rows, sz.cols)
			b.ReportAllocs()
			for b.Loop() {
				fft.Forward(y, x, sz.rows, sz.cols)
			}
		})
	}
}

func dirName(inv bool) string {
	if inv {
		return "inverse"
	}
	return "forward"
}
