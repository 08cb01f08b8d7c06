package isolate

import (
	"context"
	"math/rand"
	"os"
	"path/filepath"
	"testing"

	"github.com/kspaced/kspaced/mri"
	"github.com/kspaced/kspaced/mri/kspaceio"
)

// demoScan writes a file the size of `make demo`'s: one slice, 8 coils,
// 192 × 192, 4× undersampled, as `kspaced simulate` writes it.
func demoScan(b *testing.B) string {
	rng := rand.New(rand.NewSource(1))
	s := mri.Scan{Coils: 8, Rows: 192, Cols: 192, KSpace: make([]complex64, 8*192*192), Mask: make([]float32, 192*192)}
	for c := 0; c < 192; c++ {
		if c%4 == 0 || (c > 84 && c < 108) {
			for r := 0; r < 192; r++ {
				s.Mask[r*192+c] = 1
			}
		}
	}
	for i := range s.KSpace {
		if s.Mask[i%(192*192)] == 1 {
			s.KSpace[i] = complex(rng.Float32(), rng.Float32())
		}
	}
	p := filepath.Join(b.TempDir(), "brain.h5")
	if err := kspaceio.WriteFastMRI(p, &kspaceio.Volume{Slices: []mri.Scan{s}}); err != nil {
		b.Skip(err)
	}
	return p
}

// BenchmarkReadDemo compares reading the demo scan in this process with
// reading it through a reader child (spawn, limits, Landlock re-exec,
// parse, transfer over the pipe). KSPACED_BENCH_EXE names the binary to
// start as the child (a built kspaced, whose start-up costs more than this
// test binary's); by default the test binary itself.
func BenchmarkReadDemo(b *testing.B) { benchRead(b, demoScan(b)) }

// BenchmarkReadFile is BenchmarkReadDemo on the file KSPACED_BENCH_FILE
// names (skipped without it), e.g. a 128² scan of the prior archive.
func BenchmarkReadFile(b *testing.B) {
	p := os.Getenv("KSPACED_BENCH_FILE")
	if p == "" {
		b.Skip("KSPACED_BENCH_FILE not set")
	}
	benchRead(b, p)
}

func benchRead(b *testing.B, p string) {
	b.Run("in-process", func(b *testing.B) {
		for range b.N {
			if _, err := kspaceio.Read(p); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("child", func(b *testing.B) {
		r := &Reader{Exe: os.Getenv("KSPACED_BENCH_EXE")}
		for range b.N {
			if _, err := r.KSpace(context.Background(), p); err != nil {
				b.Fatal(err)
			}
		}
	})
}
