//go:build cuda

package gpu

/*
#include <stdlib.h>
#include "dl.h"
*/
import "C"

import (
	"errors"
	"fmt"
	"sync"
	"unsafe"
)

const (
	libCUDA   = C.KG_LIB_CUDA
	libCUBLAS = C.KG_LIB_CUBLAS
	libCUFFT  = C.KG_LIB_CUFFT
	libNVRTC  = C.KG_LIB_NVRTC
)

var libNames = [...]string{libCUDA: "the NVIDIA driver (libcuda.so.1)", libCUBLAS: "cuBLAS", libCUFFT: "cuFFT", libNVRTC: "NVRTC"}

var (
	loadMu  sync.Mutex
	loadErr [C.KG_NLIBS]error
	loaded  [C.KG_NLIBS]bool
)

// load opens a library group once; a failure is remembered.
func load(lib int) error {
	loadMu.Lock()
	defer loadMu.Unlock()
	if loaded[lib] || loadErr[lib] != nil {
		return loadErr[lib]
	}
	var msg [1024]C.char
	if C.kg_load(C.int(lib), &msg[0], C.int(len(msg))) != 0 {
		loadErr[lib] = fmt.Errorf("cannot load %s: %s", libNames[lib], C.GoString(&msg[0]))
		if lib == libCUDA {
			loadErr[lib] = fmt.Errorf("%w: %w", ErrNoGPU, loadErr[lib])
		}
		return loadErr[lib]
	}
	loaded[lib] = true
	return nil
}

// LibraryPath is the file a library group was loaded from, for logs.
func LibraryPath(lib string) string {
	m := map[string]int{"cuda": libCUDA, "cublas": libCUBLAS, "cufft": libCUFFT, "nvrtc": libNVRTC}
	if i, ok := m[lib]; ok {
		return C.GoString(C.kg_loaded_path(C.int(i)))
	}
	return ""
}

func cuErr(op string, r C.int) error {
	if r == 0 {
		return nil
	}
	return &Error{Op: op, Code: int(r), Name: C.GoString(C.kg_error_name(r))}
}

var (
	initOnce sync.Once
	initErr  error
)

// Open makes a Context on GPU ordinal (0 for the first). The error wraps
// ErrNoGPU when the machine has no usable CUDA device.
func Open(ordinal int) (*Context, error) {
	if err := load(libCUDA); err != nil {
		return nil, err
	}
	initOnce.Do(func() {
		if r := C.kg_init(); r != 0 {
			initErr = fmt.Errorf("%w: %w", ErrNoGPU, cuErr("cuInit", r))
		}
	})
	if initErr != nil {
		return nil, initErr
	}
	var n C.int
	if r := C.kg_device_count(&n); r != 0 {
		return nil, fmt.Errorf("%w: %w", ErrNoGPU, cuErr("cuDeviceGetCount", r))
	}
	if ordinal < 0 || ordinal >= int(n) {
		return nil, fmt.Errorf("%w: device %d requested, %d present", ErrNoGPU, ordinal, int(n))
	}
	d := &cudaDriver{}
	if r := C.kg_device_get(C.int(ordinal), &d.dev); r != 0 {
		return nil, cuErr("cuDeviceGet", r)
	}
	var name [256]C.char
	if r := C.kg_device_name(d.dev, &name[0], C.int(len(name))); r != 0 {
		return nil, cuErr("cuDeviceGetName", r)
	}
	d.inf.Name = C.GoString(&name[0])
	for _, a := range []struct {
		attr int
		v    *int
	}{
		{C.CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MAJOR, &d.inf.Major},
		{C.CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MINOR, &d.inf.Minor},
		{C.CU_DEVICE_ATTRIBUTE_MULTIPROCESSOR_COUNT, &d.inf.SMs},
	} {
		var v C.int
		if r := C.kg_device_attr(d.dev, C.int(a.attr), &v); r != 0 {
			return nil, cuErr("cuDeviceGetAttribute", r)
		}
		*a.v = int(v)
	}
	var mem C.size_t
	if r := C.kg_device_total_mem(d.dev, &mem); r != 0 {
		return nil, cuErr("cuDeviceTotalMem", r)
	}
	d.inf.MemBytes = int64(mem)
	var ver C.int
	if r := C.kg_driver_version(&ver); r != 0 {
		return nil, cuErr("cuDriverGetVersion", r)
	}
	d.inf.Driver = int(ver)
	// The primary context is the one the CUDA runtime inside cuBLAS and
	// cuFFT uses, so all three share memory and the stream.
	if r := C.kg_primary_ctx_retain(d.dev, &d.ctx); r != 0 {
		return nil, cuErr("cuDevicePrimaryCtxRetain", r)
	}
	if r := C.kg_stream_create(d.ctx, &d.stream); r != 0 {
		C.kg_primary_ctx_release(d.dev)
		return nil, cuErr("cuStreamCreate", r)
	}
	return newContext(d), nil
}

type cudaDriver struct {
	dev    C.CUdevice
	ctx    C.CUcontext
	stream C.CUstream
	inf    Info
}

func (d *cudaDriver) info() Info { return d.inf }

func (d *cudaDriver) rawAlloc(bytes int) (Ptr, error) {
	var p C.uint64_t
	if r := C.kg_mem_alloc(d.ctx, &p, C.size_t(bytes)); r != 0 {
		return 0, cuErr("cuMemAlloc", r)
	}
	return Ptr(p), nil
}

func (d *cudaDriver) rawFree(p Ptr) error {
	return cuErr("cuMemFree", C.kg_mem_free(d.ctx, C.uint64_t(p)))
}

func (d *cudaDriver) memset32(p Ptr, v uint32, n int) error {
	return cuErr("cuMemsetD32Async", C.kg_memset32(d.ctx, d.stream, C.uint64_t(p), C.uint(v), C.size_t(n)))
}

func (d *cudaDriver) htod(dst Ptr, src unsafe.Pointer, bytes int) error {
	return cuErr("cuMemcpyHtoDAsync", C.kg_htod(d.ctx, d.stream, C.uint64_t(dst), src, C.size_t(bytes)))
}

func (d *cudaDriver) dtoh(dst unsafe.Pointer, src Ptr, bytes int) error {
	return cuErr("cuMemcpyDtoHAsync", C.kg_dtoh(d.ctx, d.stream, dst, C.uint64_t(src), C.size_t(bytes)))
}

func (d *cudaDriver) dtod(dst, src Ptr, bytes int) error {
	return cuErr("cuMemcpyDtoDAsync", C.kg_dtod(d.ctx, d.stream, C.uint64_t(dst), C.uint64_t(src), C.size_t(bytes)))
}

func (d *cudaDriver) sync() error {
	return cuErr("cuStreamSynchronize", C.kg_stream_sync(d.ctx, d.stream))
}

func (d *cudaDriver) memInfo() (int64, int64, error) {
	var f, t C.size_t
	if r := C.kg_mem_info(d.ctx, &f, &t); r != 0 {
		return 0, 0, cuErr("cuMemGetInfo", r)
	}
	return int64(f), int64(t), nil
}

func (d *cudaDriver) poison(Ptr, int) {}

func (d *cudaDriver) close() error {
	err := cuErr("cuStreamDestroy", C.kg_stream_destroy(d.ctx, d.stream))
	return errors.Join(err, cuErr("cuDevicePrimaryCtxRelease", C.kg_primary_ctx_release(d.dev)))
}

type cudaModule struct {
	d   *cudaDriver
	mod C.CUmodule
}

func (d *cudaDriver) loadModule(name, src string, _ []kernelDecl) (moduleImpl, error) {
	if err := load(libNVRTC); err != nil {
		return nil, err
	}
	archs, err := NVRTCArchs()
	if err != nil {
		return nil, err
	}
	arch, cubin, err := PickArch(d.inf.CC(), archs)
	if err != nil {
		return nil, err
	}
	image, _, err := NVRTCCompile(name, src, arch, cubin)
	if err != nil {
		return nil, err
	}
	if !cubin {
		image = append(image, 0) // PTX is loaded as a C string
	}
	var log [4096]C.char
	m := &cudaModule{d: d}
	cimg := C.CBytes(image)
	defer C.free(cimg)
	if r := C.kg_module_load(d.ctx, &m.mod, cimg, &log[0], C.int(len(log))); r != 0 {
		err := cuErr("cuModuleLoadDataEx", r)
		if s := C.GoString(&log[0]); s != "" {
			err = fmt.Errorf("%w: %s", err, s)
		}
		return nil, err
	}
	return m, nil
}

func (m *cudaModule) function(name string) (unsafe.Pointer, error) {
	cn := C.CString(name)
	defer C.free(unsafe.Pointer(cn))
	var f C.CUfunction
	if r := C.kg_module_function(m.d.ctx, m.mod, cn, &f); r != 0 {
		return nil, fmt.Errorf("%s: %w", name, cuErr("cuModuleGetFunction", r))
	}
	return unsafe.Pointer(f), nil
}

func (m *cudaModule) unload() error {
	return cuErr("cuModuleUnload", C.kg_module_unload(m.d.ctx, m.mod))
}

func (d *cudaDriver) launch(fn unsafe.Pointer, g, b Dim3, shmem int, a *argPack) error {
	r := C.kg_launch(d.ctx, d.stream, C.CUfunction(fn), C.uint(g.X), C.uint(g.Y), C.uint(g.Z),
		C.uint(b.X), C.uint(b.Y), C.uint(b.Z), C.uint(shmem), (*C.uchar)(a.buf), (*C.int)(a.off), C.int(a.n))
	return cuErr("cuLaunchKernel", r)
}

// ---- cuBLAS ----

type cudaBLAS struct {
	d *cudaDriver
	h C.cublasHandle_t
}

var cublasStatus = map[int]string{
	1: "CUBLAS_STATUS_NOT_INITIALIZED", 3: "CUBLAS_STATUS_ALLOC_FAILED", 7: "CUBLAS_STATUS_INVALID_VALUE",
	8: "CUBLAS_STATUS_ARCH_MISMATCH", 11: "CUBLAS_STATUS_MAPPING_ERROR", 13: "CUBLAS_STATUS_EXECUTION_FAILED",
	14: "CUBLAS_STATUS_INTERNAL_ERROR", 15: "CUBLAS_STATUS_NOT_SUPPORTED", 16: "CUBLAS_STATUS_LICENSE_ERROR",
}

func blasErr(op string, r C.int) error {
	if r == 0 {
		return nil
	}
	name, ok := cublasStatus[int(r)]
	if !ok {
		name = "cuBLAS status"
	}
	return &Error{Op: op, Code: int(r), Name: name}
}

func (d *cudaDriver) newBLAS(tf32 bool) (blasImpl, error) {
	if err := load(libCUBLAS); err != nil {
		return nil, err
	}
	b := &cudaBLAS{d: d}
	t := C.int(0)
	if tf32 {
		t = 1
	}
	if r := C.kg_blas_create(d.ctx, d.stream, t, &b.h); r != 0 {
		return nil, blasErr("cublasCreate", r)
	}
	return b, nil
}

func cbool(b bool) C.int {
	if b {
		return 1
	}
	return 0
}

func (b *cudaBLAS) sgemm(ta, tb bool, m, n, k int, alpha float32, a Ptr, lda int, bp Ptr, ldb int, beta float32, c Ptr, ldc int) error {
	return blasErr("cublasSgemm", C.kg_sgemm(b.d.ctx, b.h, cbool(ta), cbool(tb), C.int(m), C.int(n), C.int(k), C.float(alpha),
		C.uint64_t(a), C.int(lda), C.uint64_t(bp), C.int(ldb), C.float(beta), C.uint64_t(c), C.int(ldc)))
}

func (b *cudaBLAS) sgemmBatched(ta, tb bool, m, n, k int, alpha float32, a Ptr, lda, sa int, bp Ptr, ldb, sb int, beta float32, c Ptr, ldc, sc, batch int) error {
	return blasErr("cublasSgemmStridedBatched", C.kg_sgemm_batched(b.d.ctx, b.h, cbool(ta), cbool(tb), C.int(m), C.int(n), C.int(k),
		C.float(alpha), C.uint64_t(a), C.int(lda), C.longlong(sa), C.uint64_t(bp), C.int(ldb), C.longlong(sb),
		C.float(beta), C.uint64_t(c), C.int(ldc), C.longlong(sc), C.int(batch)))
}

func (b *cudaBLAS) version() (int, error) {
	var v C.int
	return int(v), blasErr("cublasGetVersion", C.kg_blas_version(b.d.ctx, b.h, &v))
}

func (b *cudaBLAS) destroy() error { return blasErr("cublasDestroy", C.kg_blas_destroy(b.d.ctx, b.h)) }

// ---- cuFFT ----

var cufftResult = map[int]string{
	1: "CUFFT_INVALID_PLAN", 2: "CUFFT_ALLOC_FAILED", 3: "CUFFT_INVALID_TYPE", 4: "CUFFT_INVALID_VALUE",
	5: "CUFFT_INTERNAL_ERROR", 6: "CUFFT_EXEC_FAILED", 7: "CUFFT_SETUP_FAILED", 8: "CUFFT_INVALID_SIZE",
	9: "CUFFT_UNALIGNED_DATA", 12: "CUFFT_INVALID_DEVICE", 14: "CUFFT_NO_WORKSPACE", 15: "CUFFT_NOT_IMPLEMENTED",
	16: "CUFFT_LICENSE_ERROR", 17: "CUFFT_NOT_SUPPORTED",
}

func fftErr(op string, r C.int) error {
	if r == 0 {
		return nil
	}
	name, ok := cufftResult[int(r)]
	if !ok {
		name = "cuFFT result"
	}
	return &Error{Op: op, Code: int(r), Name: name}
}

type cudaFFT struct {
	d    *cudaDriver
	plan C.cufftHandle
}

func (d *cudaDriver) newFFT(rows, cols, batch int) (fftImpl, error) {
	if err := load(libCUFFT); err != nil {
		return nil, err
	}
	f := &cudaFFT{d: d}
	if r := C.kg_fft_plan(d.ctx, d.stream, C.int(rows), C.int(cols), C.int(batch), &f.plan); r != 0 {
		return nil, fftErr("cufftPlanMany", r)
	}
	return f, nil
}

func (f *cudaFFT) exec(data Ptr, inverse bool) error {
	return fftErr("cufftExecC2C", C.kg_fft_exec(f.d.ctx, f.plan, C.uint64_t(data), cbool(inverse)))
}

func (f *cudaFFT) destroy() error { return fftErr("cufftDestroy", C.kg_fft_destroy(f.d.ctx, f.plan)) }

// BuiltWithCUDAHeaders reports whether the package was compiled against the
// installed CUDA headers (else against its own cuda_decls.h).
func BuiltWithCUDAHeaders() bool { return C.kg_cuda_headers() == 1 }
