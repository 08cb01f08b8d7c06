package mri

import (
	"math"
	"math/cmplx"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
)

func testRand(seed uint64) *rand.Rand { return rand.New(rand.NewPCG(seed, 99)) }

func randVec(rng *rand.Rand, n int) []complex64 {
	v := make([]complex64, n)
	for i := range v {
		v[i] = complex(float32(rng.NormFloat64()), float32(rng.NormFloat64()))
	}
	return v
}

// dot64 is ⟨a, b⟩ in float64, independent of the package's helpers.
func dot64(a, b []complex64) complex128 {
	var s complex128
	for i := range a {
		s += cmplx.Conj(complex128(a[i])) * complex128(b[i])
	}
	return s
}

func norm64(a []complex64) float64 { return math.Sqrt(real(dot64(a, a))) }

func relDiff(a, b []complex64) float64 {
	var d, n float64
	for i := range a {
		e := complex128(a[i]) - complex128(b[i])
		d += real(e)*real(e) + imag(e)*imag(e)
		n += real(complex128(b[i]))*real(complex128(b[i])) + imag(complex128(b[i]))*imag(complex128(b[i]))
	}
	if n == 0 {
		return math.Sqrt(d)
	}
	return math.Sqrt(d / n)
}

// naiveDFT2c is the centred orthonormal 2-D DFT by its definition, in
// float64: X[u][v] = Σ x[r][c] e^{∓2πi((u−R/2)(r−R/2)/R + (v−C/2)(c−C/2)/C)}/√(RC)
// with index shifts fftshift/ifftshift amount to (floor division as numpy).
func naiveDFT2c(x []complex128, rows, cols int, inverse bool) []complex128 {
	sign := -1.0
	if inverse {
		sign = 1
	}
	out := make([]complex128, rows*cols)
	s := 1 / math.Sqrt(float64(rows*cols))
	for u := 0; u < rows; u++ {
		for v := 0; v < cols; v++ {
			var acc complex128
			for r := 0; r < rows; r++ {
				for c := 0; c < cols; c++ {
					ph := sign * 2 * math.Pi * (float64((u-rows/2)*(r-rows/2))/float64(rows) + float64((v-cols/2)*(c-cols/2))/float64(cols))
					acc += x[r*cols+c] * cmplx.Exp(complex(0, ph))
				}
			}
			out[u*cols+v] = acc * complex(s, 0)
		}
	}
	return out
}

// runPython runs a script with Debian's python3 in dir and fails the test on error.
func runPython(t *testing.T, py, dir, script string) string {
	t.Helper()
	path := filepath.Join(dir, "check.py")
	if err := os.WriteFile(path, []byte(script), 0o644); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(py, path)
	cmd.Dir = dir
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("python: %v\n%s", err, out)
	}
	return string(out)
}
