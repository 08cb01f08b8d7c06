//go:build cuda

// Package gpu is kspaced's CUDA layer: device and context, a caching
// allocator, host↔device copies, kernels compiled at run time with NVRTC,
// cuBLAS GEMM and cuFFT, all on one stream per Context.
//
// The CUDA libraries are opened with dlopen on first use instead of being
// linked: a binary built with -tags cuda starts on any machine, and asking
// for CUDA where there is no driver or no GPU returns an error (ErrNoGPU)
// instead of stopping the process. (gorgonia.org/cu, the binding the
// project first meant to use, calls cuInit in its package init and exits the
// process when that fails, so linking it would make `kspaced --device cpu`
// die on machines without a GPU; see docs/gpu.md.)
//
// Besides the real driver a Context can run on a CPU emulator of the CUDA
// execution model (OpenEmulator): kernels are compiled with the host C++
// compiler against a small shim, every thread block runs its threads as
// cooperatively scheduled fibers (so __syncthreads and shared memory behave
// as on a GPU), and cuBLAS and cuFFT are replaced by plain reference code
// with the same argument conventions. It lets the whole backend be tested
// for indexing and launch-configuration mistakes on a machine without a GPU;
// it says nothing about performance or about the hardware's own arithmetic.
package gpu

/*
#cgo CFLAGS: -O2 -I/usr/local/cuda/include
#cgo LDFLAGS: -ldl -lm
#cgo noescape kg_launch
#cgo nocallback kg_launch
#cgo noescape kg_emu_launch
#cgo nocallback kg_emu_launch
#cgo noescape kg_htod
#cgo nocallback kg_htod
#cgo noescape kg_dtoh
#cgo nocallback kg_dtoh
#cgo noescape kg_mem_alloc
#cgo nocallback kg_mem_alloc
#cgo noescape emu_alloc
#cgo nocallback emu_alloc
#cgo noescape emu_htod
#cgo nocallback emu_htod
#cgo noescape emu_dtoh
#cgo nocallback emu_dtoh
#include <stdlib.h>
#include "dl.h"
*/
import "C"

import (
	"errors"
	"fmt"
	"math"
	"sync"
	"unsafe"
)

// Ptr is a device address (an offset into emulator memory for OpenEmulator).
// Zero is the nil pointer.
type Ptr uintptr

// Add returns p advanced by bytes.
func (p Ptr) Add(bytes int) Ptr { return p + Ptr(bytes) }

// Dim3 is a CUDA grid or block shape.
type Dim3 struct{ X, Y, Z uint32 }

// D1 is a one-dimensional shape.
func D1(x int) Dim3 { return Dim3{uint32(x), 1, 1} }

// ErrNoGPU marks every error that means "CUDA cannot be used on this
// machine": no driver library, no device, or cuInit failing.
var ErrNoGPU = errors.New("no usable CUDA GPU")

// Error is a failed CUDA, cuBLAS, cuFFT or NVRTC call.
type Error struct {
	Op   string // the API call
	Code int
	Name string
}

func (e *Error) Error() string { return fmt.Sprintf("cuda: %s: %s (%d)", e.Op, e.Name, e.Code) }

// Info describes the device a Context runs on.
type Info struct {
	Name         string
	Major, Minor int // compute capability
	SMs          int
	MemBytes     int64
	Driver       int // CUDA driver version, e.g. 12040 (0 for the emulator)
	Emulated     bool
}

// CC is the compute capability as one number, e.g. 90 for 9.0.
func (i Info) CC() int { return 10*i.Major + i.Minor }

func (i Info) String() string {
	if i.Emulated {
		return "CPU emulator of the CUDA execution model"
	}
	return fmt.Sprintf("%s (compute %d.%d, %d SMs, %.1f GiB, driver %d.%d)", i.Name, i.Major, i.Minor, i.SMs,
		float64(i.MemBytes)/(1<<30), i.Driver/1000, i.Driver%1000/10)
}

// driver is what a Context runs on: the CUDA driver API or the emulator.
type driver interface {
	info() Info
	rawAlloc(bytes int) (Ptr, error)
	rawFree(p Ptr) error
	memset32(p Ptr, v uint32, n int) error
	htod(dst Ptr, src unsafe.Pointer, bytes int) error
	dtoh(dst unsafe.Pointer, src Ptr, bytes int) error
	dtod(dst, src Ptr, bytes int) error
	sync() error
	memInfo() (free, total int64, err error)
	loadModule(name, src string, kernels []kernelDecl) (moduleImpl, error)
	launch(fn unsafe.Pointer, grid, block Dim3, shmem int, a *argPack) error
	newBLAS(tf32 bool) (blasImpl, error)
	newFFT(rows, cols, batch int) (fftImpl, error)
	// poison marks freed memory (the emulator fills it with NaN so reads of
	// stale data show); a no-op on a GPU.
	poison(p Ptr, bytes int)
	close() error
}

type moduleImpl interface {
	function(name string) (unsafe.Pointer, error)
	unload() error
}

// Context is one device with one stream. Work is queued in call order;
// Download and Sync wait for it. Methods are safe for concurrent use, and
// work from different goroutines is ordered by the stream.
type Context struct {
	drv   driver
	alloc *Allocator

	mu      sync.Mutex // guards args and serialises launches
	args    *argPack
	modules []*Module

	compileMu sync.Mutex         // one compilation at a time
	compiled  map[string]*Module // by source text
	closed    bool
}

func newContext(d driver) *Context {
	c := &Context{drv: d, args: newArgPack()}
	c.alloc = NewAllocator(d.rawAlloc, d.rawFree)
	return c
}

// Info describes the device.
func (c *Context) Info() Info { return c.drv.info() }

// Alloc returns bytes of uninitialised device memory from the caching
// allocator.
func (c *Context) Alloc(bytes int) (Ptr, error) {
	if bytes < 0 {
		return 0, fmt.Errorf("cuda: allocate %d bytes", bytes)
	}
	if bytes == 0 {
		return 0, nil
	}
	return c.alloc.Alloc(bytes)
}

// Free returns memory from Alloc to the cache; Free(0) does nothing.
func (c *Context) Free(p Ptr) error {
	if p == 0 {
		return nil
	}
	n, err := c.alloc.sizeOf(p)
	if err != nil {
		return err
	}
	c.drv.poison(p, n)
	return c.alloc.Free(p)
}

// Trim waits for queued work and releases cached memory to the driver.
func (c *Context) Trim() error {
	if err := c.drv.sync(); err != nil {
		return err
	}
	return c.alloc.Trim()
}

// MemStats reports the allocator's bookkeeping.
func (c *Context) MemStats() AllocStats { return c.alloc.Stats() }

// MemInfo is the driver's free and total device memory.
func (c *Context) MemInfo() (free, total int64, err error) { return c.drv.memInfo() }

// Memset32 sets n 32-bit words at p to v (queued).
func (c *Context) Memset32(p Ptr, v uint32, n int) error {
	if n <= 0 {
		return nil
	}
	return c.drv.memset32(p, v, n)
}

// Copy queues a device-to-device copy of bytes.
func (c *Context) Copy(dst, src Ptr, bytes int) error {
	if bytes <= 0 || dst == src {
		return nil
	}
	return c.drv.dtod(dst, src, bytes)
}

// Sync waits until all queued work is done and reports its first error.
func (c *Context) Sync() error { return c.drv.sync() }

// Elem is a plain value type that can be copied to and from the device.
type Elem interface {
	~float32 | ~float64 | ~complex64 | ~complex128 | ~int32 | ~uint32 | ~int64 | ~uint64
}

// Upload copies src to dst. src may be reused as soon as it returns.
func Upload[T Elem](c *Context, dst Ptr, src []T) error {
	if len(src) == 0 {
		return nil
	}
	return c.drv.htod(dst, unsafe.Pointer(&src[0]), len(src)*int(unsafe.Sizeof(src[0])))
}

// Download waits for queued work, then copies len(dst) values from src.
func Download[T Elem](c *Context, dst []T, src Ptr) error {
	if len(dst) == 0 {
		return c.drv.sync()
	}
	return c.drv.dtoh(unsafe.Pointer(&dst[0]), src, len(dst)*int(unsafe.Sizeof(dst[0])))
}

// Close releases modules and cached memory. Memory still allocated stays
// with the driver until the process ends.
func (c *Context) Close() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closed {
		return nil
	}
	c.closed = true
	err := c.drv.sync()
	for _, m := range c.modules {
		err = errors.Join(err, m.impl.unload())
	}
	err = errors.Join(err, c.alloc.Trim(), c.drv.close())
	c.args.free()
	return err
}

// ---- kernel arguments ----

// Arg is one kernel argument; build it with P, I, L, F or D so that its size
// matches the kernel's parameter.
type Arg struct {
	kind byte
	bits uint64
}

// P is a pointer argument.
func P(p Ptr) Arg { return Arg{'p', uint64(p)} }

// I is an int (32-bit) argument. Values outside int32 make Launch fail.
func I(v int) Arg { return Arg{'i', uint64(int64(v))} }

// L is a long long (64-bit) argument.
func L(v int) Arg { return Arg{'l', uint64(int64(v))} }

// F is a float argument.
func F(v float32) Arg { return Arg{'f', uint64(math.Float32bits(v))} }

// D is a double argument.
func D(v float64) Arg { return Arg{'d', math.Float64bits(v)} }

const (
	argBufLen = 512
	maxArgs   = 32 // KG_MAXARGS in dl.c
)

// argPack is C memory holding one launch's arguments, each at its natural
// alignment, and their offsets: the layout cuLaunchKernel's parameter array
// points into.
type argPack struct {
	buf  unsafe.Pointer // C memory, argBufLen bytes
	off  unsafe.Pointer // C memory, maxArgs ints
	n    int
	size int
}

func newArgPack() *argPack {
	return &argPack{buf: C.malloc(argBufLen), off: C.malloc(C.size_t(maxArgs * C.sizeof_int))}
}

func (a *argPack) free() {
	C.free(a.buf)
	C.free(a.off)
	a.buf, a.off = nil, nil
}

// pack lays out args for a kernel with signature sig (one letter per
// parameter: p pointer, i int, l long long, f float, d double).
func (a *argPack) pack(kernel, sig string, args []Arg) error {
	if len(args) != len(sig) {
		return fmt.Errorf("cuda: kernel %s takes %d arguments (%s), got %d", kernel, len(sig), sig, len(args))
	}
	buf := unsafe.Slice((*byte)(a.buf), argBufLen)
	off := unsafe.Slice((*C.int)(a.off), maxArgs)
	pos := 0
	for i, g := range args {
		if g.kind != sig[i] {
			return fmt.Errorf("cuda: kernel %s argument %d is %q, the kernel wants %q", kernel, i, g.kind, sig[i])
		}
		size := 8
		if g.kind == 'i' || g.kind == 'f' {
			size = 4
			if g.kind == 'i' && int64(g.bits) != int64(int32(int64(g.bits))) {
				return fmt.Errorf("cuda: kernel %s argument %d: %d does not fit an int", kernel, i, int64(g.bits))
			}
		}
		pos = (pos + size - 1) &^ (size - 1)
		for b := 0; b < size; b++ {
			buf[pos+b] = byte(g.bits >> (8 * b))
		}
		off[i] = C.int(pos)
		pos += size
	}
	a.n, a.size = len(args), pos
	return nil
}

// ---- modules and kernels ----

// Module is a compiled kernel source.
type Module struct {
	Name    string
	kernels map[string]*Kernel
	impl    moduleImpl
}

// Kernel returns the named __global__ function, or nil.
func (m *Module) Kernel(name string) *Kernel { return m.kernels[name] }

// Kernel is one __global__ function of a Module.
type Kernel struct {
	ctx  *Context
	name string
	sig  string
	fn   unsafe.Pointer
}

// Name is the kernel's name.
func (k *Kernel) Name() string { return k.name }

// Launch queues the kernel on the context's stream. The arguments must match
// the kernel's parameter list in number and type.
func (k *Kernel) Launch(grid, block Dim3, shmem int, args ...Arg) error {
	if grid.X == 0 || grid.Y == 0 || grid.Z == 0 {
		return nil // nothing to do: CUDA would reject an empty grid
	}
	c := k.ctx
	c.mu.Lock()
	defer c.mu.Unlock()
	if err := c.args.pack(k.name, k.sig, args); err != nil {
		return err
	}
	if err := c.drv.launch(k.fn, grid, block, shmem, c.args); err != nil {
		return fmt.Errorf("launch %s: %w", k.name, err)
	}
	return nil
}

// Compile builds a CUDA C source (NVRTC on a GPU, the host compiler on the
// emulator) and loads it. Every `extern "C" __global__ void` function in src
// becomes a Kernel. Modules are cached by source, so operators built per
// scan compile their kernels once per context.
func (c *Context) Compile(name, src string) (*Module, error) {
	c.compileMu.Lock()
	defer c.compileMu.Unlock()
	if m, ok := c.compiled[src]; ok {
		return m, nil
	}
	decls, err := ParseKernels(src)
	if err != nil {
		return nil, fmt.Errorf("compile %s: %w", name, err)
	}
	impl, err := c.drv.loadModule(name, src, decls)
	if err != nil {
		return nil, fmt.Errorf("compile %s: %w", name, err)
	}
	m := &Module{Name: name, kernels: map[string]*Kernel{}, impl: impl}
	for _, d := range decls {
		fn, err := impl.function(d.Name)
		if err != nil {
			impl.unload()
			return nil, fmt.Errorf("compile %s: %w", name, err)
		}
		m.kernels[d.Name] = &Kernel{ctx: c, name: d.Name, sig: d.Sig, fn: fn}
	}
	c.mu.Lock()
	c.modules = append(c.modules, m)
	c.mu.Unlock()
	if c.compiled == nil {
		c.compiled = map[string]*Module{}
	}
	c.compiled[src] = m
	return m, nil
}

// offsets and bytes expose the packed layout to tests.
func (a *argPack) offsets() []C.int { return unsafe.Slice((*C.int)(a.off), maxArgs)[:a.n] }
func (a *argPack) bytes() []byte    { return unsafe.Slice((*byte)(a.buf), argBufLen)[:a.size] }
