//go:build cuda

package gpu

import (
	"errors"
	"slices"
	"strings"
	"testing"
)

func TestSizeClass(t *testing.T) {
	for _, c := range []struct{ in, want int }{
		{1, 256}, {256, 256}, {257, 512}, {1000, 1024}, {1 << 20, 1 << 20}, {1<<20 + 1, 2 << 20},
		{4 << 20, 4 << 20}, {4<<20 + 1, 6 << 20}, {7 << 20, 8 << 20}, {9<<20 + 5, 10 << 20},
	} {
		if got := SizeClass(c.in); got != c.want {
			t.Errorf("SizeClass(%d) = %d, want %d", c.in, got, c.want)
		}
	}
	// Waste bound: a class never exceeds twice the request, nor the request
	// plus 2 MiB above 4 MiB.
	for n := 1; n < 64<<20; n = n*5/4 + 1 {
		c := SizeClass(n)
		if c < n || (n > minClass && c >= 2*n) || (n > largeClass && c-n >= largeStep) {
			t.Fatalf("SizeClass(%d) = %d", n, c)
		}
	}
}

// fakeRaw hands out fake addresses, can be told to run out of memory, and
// checks that no block is freed twice or freed while the allocator still
// counts it as live.
type fakeRaw struct {
	next    Ptr
	live    map[Ptr]int
	limit   int // bytes the "device" has
	used    int
	allocs  int
	freeErr error
}

func (f *fakeRaw) alloc(n int) (Ptr, error) {
	if f.used+n > f.limit {
		return 0, &Error{Op: "cuMemAlloc", Code: 2, Name: "CUDA_ERROR_OUT_OF_MEMORY"}
	}
	f.next += 1 << 30
	f.live[f.next] = n
	f.used += n
	f.allocs++
	return f.next, nil
}

func (f *fakeRaw) free(p Ptr) error {
	if f.freeErr != nil {
		return f.freeErr
	}
	n, ok := f.live[p]
	if !ok {
		return errors.New("double free")
	}
	delete(f.live, p)
	f.used -= n
	return nil
}

func TestAllocatorReuseAndTrim(t *testing.T) {
	f := &fakeRaw{live: map[Ptr]int{}, limit: 1 << 30}
	a := NewAllocator(f.alloc, f.free)
	p1, _ := a.Alloc(1000)
	p2, _ := a.Alloc(1024) // same class, distinct block
	if p1 == p2 {
		t.Fatal("two live blocks share an address")
	}
	if err := a.Free(p1); err != nil {
		t.Fatal(err)
	}
	p3, _ := a.Alloc(600) // class 1024 again: reuses p1
	if p3 != p1 || f.allocs != 2 {
		t.Fatalf("reuse: got %#x (allocs %d), want %#x from the cache", p3, f.allocs, p1)
	}
	st := a.Stats()
	if st.Live != 2048 || st.Cached != 0 || st.Reuses != 1 || st.RawAllocs != 2 {
		t.Fatalf("stats %+v", st)
	}
	if err := a.Free(p3); err != nil {
		t.Fatal(err)
	}
	if err := a.Free(p3); err == nil {
		t.Fatal("double free accepted")
	}
	if err := a.Free(12345); err == nil {
		t.Fatal("free of a foreign pointer accepted")
	}
	if err := a.Trim(); err != nil {
		t.Fatal(err)
	}
	if st := a.Stats(); st.Cached != 0 || st.Live != 1024 || st.RawFrees != 1 || len(f.live) != 1 {
		t.Fatalf("after trim: stats %+v, %d raw blocks", st, len(f.live))
	}
	if err := a.Trim(); err != nil || len(f.live) != 1 {
		t.Fatalf("second trim: %v, %d raw blocks", err, len(f.live))
	}
}

func TestAllocatorRetriesAfterTrim(t *testing.T) {
	f := &fakeRaw{live: map[Ptr]int{}, limit: 5 << 20}
	a := NewAllocator(f.alloc, f.free)
	p, err := a.Alloc(2 << 20)
	if err != nil {
		t.Fatal(err)
	}
	a.Free(p) // cached: the device has 3 MiB left
	q, err := a.Alloc(3 << 20)
	if err != nil {
		t.Fatalf("allocation that fits after releasing the cache failed: %v", err)
	}
	if st := a.Stats(); st.Cached != 0 || st.RawFrees != 1 || st.Live != 4<<20 {
		t.Fatalf("stats %+v", st)
	}
	if _, err := a.Alloc(2 << 20); err == nil || !strings.Contains(err.Error(), "OUT_OF_MEMORY") {
		t.Fatalf("allocation beyond the device: err %v", err)
	}
	a.Free(q)
	f.freeErr = errors.New("driver refuses")
	if err := a.Trim(); err == nil {
		t.Fatal("trim hid a driver error")
	}
	if st := a.Stats(); st.Cached != 4<<20 {
		t.Fatalf("a block the driver did not free left the cache: %+v", st)
	}
}

func TestParseKernels(t *testing.T) {
	src := `
#define BLOCK 256
__device__ float helper(float x) { return x; }
extern "C" __global__ void k_a(float* __restrict__ y, const float *x, float a, long long n) {}
extern "C" __global__ void k_b(int c, double d, float2* z) {}
extern "C" __global__ void k_c() {}
`
	got, err := ParseKernels(src)
	if err != nil {
		t.Fatal(err)
	}
	want := []kernelDecl{{"k_a", "ppfl"}, {"k_b", "idp"}, {"k_c", ""}}
	if len(got) != len(want) {
		t.Fatalf("got %v, want %v", got, want)
	}
	for i := range want {
		if got[i] != want[i] {
			t.Errorf("kernel %d: got %v, want %v", i, got[i], want[i])
		}
	}
	for _, bad := range []string{
		`extern "C" __global__ void k(unsigned n) {}`,
		`extern "C" __global__ void k(float*) {}`,
		`extern "C" __global__ void k(size_t n) {}`,
		`extern "C" __global__ void k(int n) {} extern "C" __global__ void k(int n) {}`,
		`__global__ void k(int n) {}`,
	} {
		if _, err := ParseKernels(bad); err == nil {
			t.Errorf("ParseKernels accepted %q", bad)
		}
	}
}

func TestPickArch(t *testing.T) {
	nvrtc118 := []int{35, 37, 50, 52, 53, 60, 61, 62, 70, 72, 75, 80, 86, 87, 89, 90}
	for _, c := range []struct {
		cc, arch int
		cubin    bool
	}{
		{90, 90, true}, {80, 80, true}, {86, 86, true},
		{100, 90, false}, // newer than this NVRTC: PTX the driver JITs
		{88, 87, false},
	} {
		a, cb, err := PickArch(c.cc, nvrtc118)
		if err != nil || a != c.arch || cb != c.cubin {
			t.Errorf("PickArch(%d) = %d, %v, %v; want %d, %v", c.cc, a, cb, err, c.arch, c.cubin)
		}
	}
	if _, _, err := PickArch(30, nvrtc118); err == nil {
		t.Error("PickArch accepted a device older than every supported arch")
	}
	if a, cb, err := PickArch(75, nil); err != nil || a != 75 || cb {
		t.Errorf("PickArch without a list = %d, %v, %v", a, cb, err)
	}
}

func TestArgPack(t *testing.T) {
	a := newArgPack()
	defer a.free()
	// p i f l d: int and float take 4 bytes, the long long after them is
	// aligned to 8.
	if err := a.pack("k", "pifld", []Arg{P(0x1122334455667788), I(-2), F(1.5), L(1 << 40), D(0.25)}); err != nil {
		t.Fatal(err)
	}
	off := make([]int, a.n)
	for i := range off {
		off[i] = int(a.offsets()[i])
	}
	if want := []int{0, 8, 12, 16, 24}; !slices.Equal(off, want) {
		t.Fatalf("offsets %v, want %v", off, want)
	}
	b := a.bytes()
	if b[0] != 0x88 || b[7] != 0x11 || b[8] != 0xfe || b[11] != 0xff || b[21] != 1 {
		t.Fatalf("layout % x", b[:32])
	}
	if err := a.pack("k", "pi", []Arg{P(1)}); err == nil {
		t.Error("wrong argument count accepted")
	}
	if err := a.pack("k", "pi", []Arg{P(1), L(3)}); err == nil {
		t.Error("long long for an int parameter accepted")
	}
	if err := a.pack("k", "i", []Arg{I(1 << 31)}); err == nil {
		t.Error("int overflow accepted")
	}
}

func TestGrid(t *testing.T) {
	if g := Grid1D(0); g.X != 0 {
		t.Errorf("Grid1D(0) = %v", g)
	}
	if g := Grid1D(1); g != D1(1) {
		t.Errorf("Grid1D(1) = %v", g)
	}
	if g := Grid1D(257); g != D1(2) {
		t.Errorf("Grid1D(257) = %v", g)
	}
	if g := Grid1D(1 << 40); g != D1(maxGrid) {
		t.Errorf("Grid1D(2^40) = %v", g)
	}
	if _, err := GridRows(1 << 31); err == nil {
		t.Error("GridRows(2^31) accepted")
	}
}

func TestCheckRowMajor(t *testing.T) {
	if err := checkRowMajor(false, false, 3, 4, 5, 5, 4, 4); err != nil {
		t.Error(err)
	}
	if err := checkRowMajor(true, true, 3, 4, 5, 3, 5, 4); err != nil {
		t.Error(err)
	}
	if err := checkRowMajor(false, false, 3, 4, 5, 4, 4, 4); err == nil {
		t.Error("lda < k accepted")
	}
	if err := checkRowMajor(false, true, 3, 4, 5, 5, 4, 4); err == nil {
		t.Error("transposed B with ldb < k accepted")
	}
}

// TestOpenReportsMissingGPU: on a machine without a GPU, Open must return
// an error naming the cause, wrapping ErrNoGPU, and not end the process.
func TestOpenReportsMissingGPU(t *testing.T) {
	c, err := Open(0)
	if err == nil {
		t.Logf("GPU present: %v", c.Info())
		if c.Info().Major < 3 || c.Info().MemBytes <= 0 {
			t.Errorf("implausible device info %+v", c.Info())
		}
		c.Close()
		return
	}
	if !errors.Is(err, ErrNoGPU) {
		t.Fatalf("Open failed without ErrNoGPU: %v", err)
	}
	t.Logf("as expected without a GPU: %v", err)
	if _, err2 := Open(0); err2 == nil || err2.Error() != err.Error() {
		t.Errorf("second Open: %v, want the same error", err2)
	}
}
