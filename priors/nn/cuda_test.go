//go:build cuda

package nn

import (
	"fmt"
	"math"
	"math/rand/v2"
	"strings"
	"testing"

	"github.com/kspaced/kspaced/internal/gpu"
	"github.com/kspaced/kspaced/internal/gpu/gputest"
)

func newCUDA(t *testing.T, ctx *gpu.Context, tf32 bool) *CUDA {
	t.Helper()
	be, err := NewCUDA(ctx, CUDAOptions{TF32: tf32})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := be.Err(); err != nil {
			t.Errorf("backend error: %v", err)
		}
		be.Close()
	})
	return be
}

// cudaTol is the parity bound the issue sets: 1e-5 relative in FP32, 1e-3
// with TF32 GEMMs.
func cudaTol(tf32 bool) float64 {
	if tf32 {
		return 1e-3
	}
	return 1e-5
}

// TestCUDACompareBackends runs the op-by-op check every accelerator backend
// must pass.
func TestCUDACompareBackends(t *testing.T) {
	gputest.Each(t, func(t *testing.T, ctx *gpu.Context) {
		for _, tf32 := range []bool{false, true} {
			be := newCUDA(t, ctx, tf32)
			for _, err := range CompareBackends(NewCPU(), be, cudaTol(tf32)) {
				t.Errorf("tf32 %v: %v", tf32, err)
			}
		}
	})
}

// TestCUDAGraphs runs every op case of the gradient checks as a graph on
// the CUDA backend: the forward pass against the float64 reference, input
// and parameter gradients against the CPU backend on the same values.
func TestCUDAGraphs(t *testing.T) {
	gputest.Each(t, func(t *testing.T, ctx *gpu.Context) {
		for _, tf32 := range []bool{false, true} {
			be := newCUDA(t, ctx, tf32)
			cases := append(opCases(), compositeCase(2, 8, 16))
			for i, tc := range cases {
				t.Run(fmt.Sprintf("%s/tf32=%v", tc.name, tf32), func(t *testing.T) {
					graphParity(t, tc, be, uint64(i+1), cudaTol(tf32))
				})
			}
		}
	})
}

func graphParity(t *testing.T, tc opCase, be *CUDA, seed uint64, tol float64) {
	r := rand.New(rand.NewPCG(seed, 17))
	type side struct {
		g   *Graph
		ins []*Tensor
		ps  []*Param
		out *Tensor
	}
	var in64, p64 [][]float64
	var inV, pV [][]float32
	for _, s := range tc.inputs {
		v := randVals(r, s[0]*s[1]*s[2]*s[3], 1)
		inV, in64 = append(inV, v), append(in64, to64(v))
	}
	for _, s := range tc.params {
		v := randVals(r, shapeLen(s), 0.5)
		pV, p64 = append(pV, v), append(p64, to64(v))
	}
	build := func(b Backend) side {
		g := NewGraph(b)
		var sd side
		sd.g = g
		for i, s := range tc.inputs {
			x := g.Input(s[0], s[1], s[2], s[3], true)
			b.Upload(x.Value(), inV[i])
			sd.ins = append(sd.ins, x)
		}
		for i, s := range tc.params {
			p := NewParam(b, fmt.Sprint("p", i), s...)
			b.Upload(p.Value, pV[i])
			sd.ps = append(sd.ps, p)
		}
		sd.out = tc.build(g, sd.ins, sd.ps)
		if err := g.Err(); err != nil {
			t.Fatal(err)
		}
		if err := g.Forward(); err != nil {
			t.Fatal(err)
		}
		return sd
	}
	cpu, gpuSide := build(NewCPU()), build(be)
	got := make([]float32, gpuSide.out.Len())
	be.Download(got, gpuSide.out.Value())
	if e := closeTo(got, tc.ref(in64, p64)); e > tol {
		t.Errorf("forward differs from the float64 reference by %.3g", e)
	}
	u := randVals(r, gpuSide.out.Len(), 1)
	for _, sd := range []side{cpu, gpuSide} {
		b := sd.g.Backend()
		seedBuf := b.Alloc(len(u))
		b.Upload(seedBuf, u)
		if err := sd.g.Backward(sd.out, seedBuf, true); err != nil {
			t.Fatal(err)
		}
	}
	cmp := func(what string, a, b Buffer) {
		x, y := make([]float32, a.N), make([]float32, b.N)
		NewCPU().Download(x, a)
		be.Download(y, b)
		if e := closeTo(y, to64(x)); e > tol {
			t.Errorf("%s differs from the CPU backend by %.3g", what, e)
		}
	}
	for i := range cpu.ins {
		cmp(fmt.Sprintf("input %d gradient", i), cpu.ins[i].Grad(), gpuSide.ins[i].Grad())
	}
	for i := range cpu.ps {
		cmp(fmt.Sprintf("param %d gradient", i), cpu.ps[i].Grad, gpuSide.ps[i].Grad)
	}
	if err := be.Err(); err != nil {
		t.Fatal(err)
	}
}

// TestCUDAConvGeometries: convolutions over the geometries the CPU layout
// test uses, where tap shifts cross row and image boundaries.
func TestCUDAConvGeometries(t *testing.T) {
	gputest.Each(t, func(t *testing.T, ctx *gpu.Context) {
		be := newCUDA(t, ctx, false)
		for i, g := range []ConvGeom{
			{N: 1, Cin: 1, H: 1, W: 1, Cout: 1, K: 3, Pad: 1},
			{N: 3, Cin: 2, H: 2, W: 7, Cout: 3, K: 3, Pad: 1},
			{N: 2, Cin: 3, H: 5, W: 5, Cout: 2, K: 5, Pad: 2},
			{N: 2, Cin: 4, H: 6, W: 3, Cout: 5, K: 3, Pad: 0},
			{N: 4, Cin: 3, H: 4, W: 4, Cout: 6, K: 1, Pad: 1},
			{N: 1, Cin: 16, H: 9, W: 11, Cout: 8, K: 3, Pad: 1},
		} {
			tc := convCase(g.N, g.Cin, g.H, g.W, g.Cout, g.K, g.Pad, i%2 == 0)
			t.Run(fmt.Sprintf("%+v", g), func(t *testing.T) { graphParity(t, tc, be, uint64(40+i), 1e-5) })
		}
	})
}

// TestCUDAFailureIsSticky: a bad GEMM view is reported by Err, later work is
// skipped, and Download returns NaN rather than stale values.
func TestCUDAFailureIsSticky(t *testing.T) {
	ctx := gputest.Emulator(t, false)
	be, err := NewCUDA(ctx, CUDAOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer be.Close()
	a, c := be.Alloc(6), be.Alloc(4)
	be.Fill(c, 2)
	be.Gemm(false, false, 2, 2, 4, 1, a, 4, a, 2, 0, c, 2) // B needs 4×2 = 8 values, has 6
	if err := be.Err(); err == nil || !strings.Contains(err.Error(), "gemm") {
		t.Fatalf("Err() = %v, want the gemm bounds error", err)
	}
	be.Fill(c, 3)
	got := make([]float32, 4)
	be.Download(got, c)
	for _, v := range got {
		if !math.IsNaN(float64(v)) {
			t.Fatalf("Download after a failure gave %v", got)
		}
	}
	if !math.IsNaN(be.Dot(c, c)) {
		t.Fatal("Dot after a failure is not NaN")
	}
}

// TestCUDAAllocatorReuse: freed buffers come back from the cache zeroed.
func TestCUDAAllocatorReuse(t *testing.T) {
	ctx := gputest.Emulator(t, false)
	be := newCUDA(t, ctx, false)
	b := be.Alloc(1000)
	be.Fill(b, 7)
	if err := be.Free(b); err != nil {
		t.Fatal(err)
	}
	before := ctx.MemStats()
	b2 := be.Alloc(1000)
	if st := ctx.MemStats(); st.Reuses != before.Reuses+1 || st.RawAllocs != before.RawAllocs {
		t.Fatalf("second allocation did not reuse the freed block: %+v then %+v", before, st)
	}
	got := make([]float32, 1000)
	be.Download(got, b2)
	for i, v := range got {
		if v != 0 {
			t.Fatalf("reused buffer not zeroed: [%d] = %g", i, v)
		}
	}
	if err := be.Free(b2.Slice(10, 20)); err == nil {
		t.Fatal("freeing a slice of a buffer was accepted")
	}
}

// TestCUDAStepsAllocateNothing: a graph's forward and backward passes on
// the CUDA backend allocate nothing on the Go heap once built (launch
// arguments live in C memory). Measured on the emulator, which runs the
// same Go code as a GPU up to the driver calls.
func TestCUDAStepsAllocateNothing(t *testing.T) {
	ctx := gputest.Emulator(t, false)
	be := newCUDA(t, ctx, false)
	tc := compositeCase(2, 4, 4)
	g := NewGraph(be)
	var ins []*Tensor
	for _, s := range tc.inputs {
		ins = append(ins, g.Input(s[0], s[1], s[2], s[3], true))
	}
	var ps []*Param
	for i, s := range tc.params {
		ps = append(ps, NewParam(be, fmt.Sprint("p", i), s...))
	}
	out := tc.build(g, ins, ps)
	seed := be.Alloc(out.Len())
	step := func() {
		if err := g.Forward(); err != nil {
			t.Fatal(err)
		}
		if err := g.Backward(out, seed, true); err != nil {
			t.Fatal(err)
		}
	}
	step()
	if a := testing.AllocsPerRun(3, step); a != 0 {
		t.Errorf("%v allocations per forward and backward", a)
	}
}
