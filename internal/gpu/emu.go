//go:build cuda

package gpu

/*
#include <stdlib.h>
#include "dl.h"
#include "emu.h"
*/
import "C"

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"unsafe"
)

// EmulatorOptions configures OpenEmulator.
type EmulatorOptions struct {
	// CXX is the host C++ compiler (default $CXX, else g++).
	CXX string
	// Reverse runs the threads of each block in reverse order between
	// barriers; results that change with it reveal a missing __syncthreads.
	Reverse bool
}

// OpenEmulator makes a Context on the CPU emulator (see the package
// comment). Kernels run synchronously, one thread at a time.
func OpenEmulator(opt EmulatorOptions) (*Context, error) {
	cxx := opt.CXX
	if cxx == "" {
		cxx = os.Getenv("CXX")
	}
	if cxx == "" {
		cxx = "g++"
	}
	path, err := exec.LookPath(cxx)
	if err != nil {
		return nil, fmt.Errorf("cuda emulator: host C++ compiler: %w", err)
	}
	dir, err := os.MkdirTemp("", "kspaced-gpu-emu-")
	if err != nil {
		return nil, fmt.Errorf("cuda emulator: %w", err)
	}
	e := &emuDriver{cxx: path, dir: dir, maps: map[Ptr][2]uint64{}, msg: (*C.char)(C.malloc(emuMsgLen))}
	if opt.Reverse {
		e.order = 1
	}
	c := newContext(e)
	c.alloc.exactClasses()
	return c, nil
}

const emuMsgLen = 512

type emuDriver struct {
	cxx   string
	dir   string
	order C.int

	mu   sync.Mutex // the fiber scheduler of each module is not reentrant
	msg  *C.char    // C memory for launch errors, emuMsgLen bytes
	maps map[Ptr][2]uint64
	mods []unsafe.Pointer
	seq  int
}

func (e *emuDriver) info() Info {
	return Info{Name: "emulator", Major: 9, Minor: 0, SMs: 1, MemBytes: 1 << 34, Emulated: true}
}

func (e *emuDriver) rawAlloc(bytes int) (Ptr, error) {
	var base C.uint64_t
	var n C.size_t
	p := C.emu_alloc(C.size_t(bytes), &base, &n)
	if p == 0 {
		return 0, &Error{Op: "cuMemAlloc", Code: 2, Name: "CUDA_ERROR_OUT_OF_MEMORY"}
	}
	e.mu.Lock()
	e.maps[Ptr(p)] = [2]uint64{uint64(base), uint64(n)}
	e.mu.Unlock()
	return Ptr(p), nil
}

func (e *emuDriver) rawFree(p Ptr) error {
	e.mu.Lock()
	m, ok := e.maps[p]
	delete(e.maps, p)
	e.mu.Unlock()
	if !ok {
		return &Error{Op: "cuMemFree", Code: 1, Name: "CUDA_ERROR_INVALID_VALUE"}
	}
	C.emu_unmap(C.uint64_t(m[0]), C.size_t(m[1]))
	return nil
}

func (e *emuDriver) poison(p Ptr, bytes int) {
	C.emu_memset32(C.uint64_t(p), 0xffffffff, C.size_t(bytes/4))
}

func (e *emuDriver) memset32(p Ptr, v uint32, n int) error {
	C.emu_memset32(C.uint64_t(p), C.uint(v), C.size_t(n))
	return nil
}

func (e *emuDriver) htod(dst Ptr, src unsafe.Pointer, bytes int) error {
	C.emu_htod(C.uint64_t(dst), src, C.size_t(bytes))
	return nil
}

func (e *emuDriver) dtoh(dst unsafe.Pointer, src Ptr, bytes int) error {
	C.emu_dtoh(dst, C.uint64_t(src), C.size_t(bytes))
	return nil
}

func (e *emuDriver) dtod(dst, src Ptr, bytes int) error {
	C.emu_memcpy(C.uint64_t(dst), C.uint64_t(src), C.size_t(bytes))
	return nil
}

func (e *emuDriver) sync() error { return nil }

func (e *emuDriver) memInfo() (int64, int64, error) { return 1 << 34, 1 << 34, nil }

func (e *emuDriver) close() error {
	e.mu.Lock()
	defer e.mu.Unlock()
	for _, h := range e.mods {
		C.kg_dlclose(h)
	}
	e.mods = nil
	C.free(unsafe.Pointer(e.msg))
	e.msg = nil
	for p, m := range e.maps {
		C.emu_unmap(C.uint64_t(m[0]), C.size_t(m[1]))
		delete(e.maps, p)
	}
	return os.RemoveAll(e.dir)
}

type emuModule struct {
	e *emuDriver
	h unsafe.Pointer
}

// loadModule compiles src with the prelude into a shared library and checks
// that every kernel's parameter types, as the C++ compiler sees them, are
// the signature ParseKernels read (the one launches are checked against).
func (e *emuDriver) loadModule(name, src string, decls []kernelDecl) (moduleImpl, error) {
	var b strings.Builder
	b.WriteString(emuPrelude)
	b.WriteString(src)
	b.WriteString("\n#line 1 \"exports.cc\"\n")
	for _, d := range decls {
		fmt.Fprintf(&b, emuExport, d.Name)
	}
	e.mu.Lock()
	e.seq++
	base := filepath.Join(e.dir, fmt.Sprintf("%s-%d", name, e.seq))
	e.mu.Unlock()
	if err := os.WriteFile(base+".cc", []byte(b.String()), 0o644); err != nil {
		return nil, err
	}
	cmd := exec.Command(e.cxx, "-std=c++17", "-O1", "-fPIC", "-shared", "-Wall", "-Werror",
		"-Wno-unused-function", "-o", base+".so", base+".cc")
	if out, err := cmd.CombinedOutput(); err != nil {
		return nil, fmt.Errorf("host compiler: %w\n%s", err, out)
	}
	cpath := C.CString(base + ".so")
	defer C.free(unsafe.Pointer(cpath))
	var msg [512]C.char
	h := C.kg_dlopen(cpath, &msg[0], C.int(len(msg)))
	if h == nil {
		return nil, errors.New(C.GoString(&msg[0]))
	}
	m := &emuModule{e: e, h: h}
	for _, d := range decls {
		cs := C.CString("emu_sig_" + d.Name)
		f := C.kg_dlsym(h, cs)
		C.free(unsafe.Pointer(cs))
		if f == nil {
			C.kg_dlclose(h)
			return nil, fmt.Errorf("kernel %s: no signature export", d.Name)
		}
		if got := C.GoString(C.kg_emu_sig(f)); got != d.Sig {
			C.kg_dlclose(h)
			return nil, fmt.Errorf("kernel %s: parameters read as %q but compile as %q", d.Name, d.Sig, got)
		}
	}
	e.mu.Lock()
	e.mods = append(e.mods, h)
	e.mu.Unlock()
	return m, nil
}

func (m *emuModule) function(name string) (unsafe.Pointer, error) {
	cs := C.CString("emu_launch_" + name)
	defer C.free(unsafe.Pointer(cs))
	f := C.kg_dlsym(m.h, cs)
	if f == nil {
		return nil, fmt.Errorf("kernel %s not found", name)
	}
	return f, nil
}

func (m *emuModule) unload() error { return nil } // closed with the driver

func (e *emuDriver) launch(fn unsafe.Pointer, g, b Dim3, _ int, a *argPack) error {
	e.mu.Lock()
	defer e.mu.Unlock()
	r := C.kg_emu_launch(fn, C.uint(g.X), C.uint(g.Y), C.uint(g.Z), C.uint(b.X), C.uint(b.Y), C.uint(b.Z), e.order,
		(*C.uchar)(a.buf), (*C.int)(a.off), C.int(a.n), e.msg, emuMsgLen)
	if r != 0 {
		return fmt.Errorf("emulator: %s", C.GoString(e.msg))
	}
	return nil
}

type emuBLAS struct{ tf32 C.int }

func (e *emuDriver) newBLAS(tf32 bool) (blasImpl, error) { return &emuBLAS{tf32: cbool(tf32)}, nil }

func (b *emuBLAS) sgemm(ta, tb bool, m, n, k int, alpha float32, a Ptr, lda int, bp Ptr, ldb int, beta float32, c Ptr, ldc int) error {
	return blasErr("cublasSgemm", C.emu_sgemm(b.tf32, cbool(ta), cbool(tb), C.int(m), C.int(n), C.int(k), C.float(alpha),
		C.uint64_t(a), C.int(lda), C.uint64_t(bp), C.int(ldb), C.float(beta), C.uint64_t(c), C.int(ldc)))
}

func (b *emuBLAS) sgemmBatched(ta, tb bool, m, n, k int, alpha float32, a Ptr, lda, sa int, bp Ptr, ldb, sb int, beta float32, c Ptr, ldc, sc, batch int) error {
	return blasErr("cublasSgemmStridedBatched", C.emu_sgemm_batched(b.tf32, cbool(ta), cbool(tb), C.int(m), C.int(n), C.int(k),
		C.float(alpha), C.uint64_t(a), C.int(lda), C.longlong(sa), C.uint64_t(bp), C.int(ldb), C.longlong(sb),
		C.float(beta), C.uint64_t(c), C.int(ldc), C.longlong(sc), C.int(batch)))
}

func (b *emuBLAS) version() (int, error) { return 0, nil }
func (b *emuBLAS) destroy() error        { return nil }

type emuFFT struct{ rows, cols, batch int }

func (e *emuDriver) newFFT(rows, cols, batch int) (fftImpl, error) {
	return &emuFFT{rows, cols, batch}, nil
}

func (f *emuFFT) exec(data Ptr, inverse bool) error {
	return fftErr("cufftExecC2C", C.emu_fft(C.uint64_t(data), C.int(f.rows), C.int(f.cols), C.int(f.batch), cbool(inverse)))
}

func (f *emuFFT) destroy() error { return nil }
