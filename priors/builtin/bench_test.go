package builtin

import (
	"fmt"
	"testing"

	"github.com/kspaced/kspaced/priors"
)

// The built-in prior's network on a batch of 8 samples (one slice's
// MMPS batch) at the sizes of docs/bench/engine.md: a forward pass, and one
// VJP after DenoiseVJP (what each Jacobian CG iteration costs).
//
//	go test -run '^$' -bench Builtin -benchtime 3x ./priors/builtin
func BenchmarkBuiltin(b *testing.B) {
	d0, _, err := Load()
	if err != nil {
		b.Fatal(err)
	}
	for _, size := range []int{128, 256, 320} {
		d, err := priors.ForSize(d0, size, size)
		if err != nil {
			b.Fatal(err)
		}
		const nb = 8
		n := 2 * size * size
		x, v, dst, g := make([]float32, nb*n), make([]float32, nb*n), make([]float32, nb*n), make([]float32, nb*n)
		for i := range x {
			x[i], v[i] = float32(i%7)*0.1, float32(i%5)*0.1
		}
		sigma := make([]float32, nb)
		for i := range sigma {
			sigma[i] = 0.1
		}
		b.Run(fmt.Sprintf("%d/denoise", size), func(b *testing.B) {
			for b.Loop() {
				if err := d.Denoise(dst, x, sigma); err != nil {
					b.Fatal(err)
				}
			}
		})
		b.Run(fmt.Sprintf("%d/vjp", size), func(b *testing.B) {
			vjp, err := d.DenoiseVJP(dst, x, sigma)
			if err != nil {
				b.Fatal(err)
			}
			for b.Loop() {
				if err := vjp(g, v); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
