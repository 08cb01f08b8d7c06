package qc

import (
	"math/rand/v2"
	"testing"

	"github.com/kspaced/kspaced/mri"
	"github.com/kspaced/kspaced/mri/simulate"
	"github.com/kspaced/kspaced/priors"
)

// The cost QC adds to a 128², 8-coil slice: data consistency (one forward
// operator and the line statistics), line motion (given A x̂), edge sparsity
// and typicality under each committed prior.
func BenchmarkQC128(b *testing.B) {
	const coils, n = 8, 128
	rng := rand.New(rand.NewPCG(1, 1))
	mask, _ := mri.RandomMask(n, n, 0.08, 4, 1)
	img := make([]complex64, n*n)
	for i, v := range simulate.SheppLogan(n) {
		img[i] = complex(v, 0)
	}
	sc, err := simulate.KSpace(img, simulate.CoilMaps(coils, n, n), coils, n, n, mask, 0.01, rng)
	if err != nil {
		b.Fatal(err)
	}
	s := &Slice{Op: mri.NewSENSE(simulate.CoilMaps(coils, n, n), coils, n, n, mask), Coils: coils, Rows: n, Cols: n,
		KSpace: sc.KSpace, Mask: mask, Image: img, NoiseVar: 1e-4, Scale: 1}
	b.Run("data-consistency", func(b *testing.B) {
		for b.Loop() {
			measureConsistency(s)
		}
	})
	ax := s.predict()
	b.Run("line-motion", func(b *testing.B) {
		for b.Loop() {
			measureLineMotion(s, ax)
		}
	})
	b.Run("edge-sparsity", func(b *testing.B) {
		for b.Loop() {
			measureEdgeSparsity(s.Image, n, n)
		}
	})
	for _, p := range []string{"lap-00", "lap-01"} {
		d, _, err := priors.LoadPrior("../train/default-prior/" + p + ".safetensors")
		if err != nil {
			b.Fatal(err)
		}
		b.Run("typicality-"+p, func(b *testing.B) {
			for b.Loop() {
				if _, err := TypicalityScore(d, img, n, n, DefaultTypicality); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
