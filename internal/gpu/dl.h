// Run-time bindings to the CUDA driver, cuBLAS, cuFFT and NVRTC. The
// libraries are opened with dlopen when first needed, so a kspaced binary
// built with -tags cuda starts (and runs on the CPU) on machines without the
// NVIDIA driver, and reports a clear error only when CUDA is asked for.
// Prototypes come from the CUDA headers when they are installed, else from
// cuda_decls.h (checked against the headers where both exist), and reach
// the function pointers through __typeof__, so a wrong signature fails to
// compile.
#ifndef KSPACED_GPU_DL_H
#define KSPACED_GPU_DL_H

#include <stddef.h>
#include <stdint.h>
#if !defined(KG_NO_CUDA_HEADERS) && defined(__has_include)
#if __has_include(<cuda.h>) && __has_include(<cublas_v2.h>) && __has_include(<cufft.h>) && __has_include(<nvrtc.h>)
#define KG_CUDA_HEADERS 1
#endif
#endif
#ifdef KG_CUDA_HEADERS
#include <cuda.h>
#include <cublas_v2.h>
#include <cufft.h>
#include <nvrtc.h>
#else
#include "cuda_decls.h"
#endif
// kg_cuda_headers reports whether the real CUDA headers were used.
int kg_cuda_headers(void);

// Library groups for kg_load.
enum { KG_LIB_CUDA = 0, KG_LIB_CUBLAS = 1, KG_LIB_CUFFT = 2, KG_LIB_NVRTC = 3, KG_NLIBS = 4 };

// kg_load opens one library group and resolves its symbols; 0 on success,
// else -1 with a message in err.
int kg_load(int lib, char *err, int errlen);
// kg_loaded_path is the file the group was loaded from ("" if not loaded).
const char *kg_loaded_path(int lib);

// Driver API. Every call that touches a context makes ctx current on the
// calling OS thread first: goroutines move between threads.
int kg_init(void);
int kg_driver_version(int *v);
int kg_device_count(int *n);
int kg_device_get(int ordinal, CUdevice *dev);
int kg_device_name(CUdevice dev, char *name, int len);
int kg_device_attr(CUdevice dev, int attr, int *v);
int kg_device_total_mem(CUdevice dev, size_t *bytes);
int kg_primary_ctx_retain(CUdevice dev, CUcontext *ctx);
int kg_primary_ctx_release(CUdevice dev);
int kg_stream_create(CUcontext ctx, CUstream *s);
int kg_stream_destroy(CUcontext ctx, CUstream s);
int kg_stream_sync(CUcontext ctx, CUstream s);
int kg_mem_alloc(CUcontext ctx, uint64_t *p, size_t bytes);
int kg_mem_free(CUcontext ctx, uint64_t p);
int kg_mem_info(CUcontext ctx, size_t *free_b, size_t *total_b);
int kg_memset32(CUcontext ctx, CUstream s, uint64_t p, unsigned v, size_t n);
int kg_htod(CUcontext ctx, CUstream s, uint64_t dst, const void *src, size_t bytes);
int kg_dtoh(CUcontext ctx, CUstream s, void *dst, uint64_t src, size_t bytes);
int kg_dtod(CUcontext ctx, CUstream s, uint64_t dst, uint64_t src, size_t bytes);
int kg_module_load(CUcontext ctx, CUmodule *m, const void *image, char *log, int loglen);
int kg_module_unload(CUcontext ctx, CUmodule m);
int kg_module_function(CUcontext ctx, CUmodule m, const char *name, CUfunction *f);
// kg_launch packs nargs arguments stored in argbuf at offsets off[] into the
// parameter array cuLaunchKernel wants.
int kg_launch(CUcontext ctx, CUstream s, CUfunction f, unsigned gx, unsigned gy, unsigned gz,
              unsigned bx, unsigned by, unsigned bz, unsigned shmem,
              const unsigned char *argbuf, const int *off, int nargs);
const char *kg_error_name(int code);

// cuBLAS.
int kg_blas_create(CUcontext ctx, CUstream s, int tf32, cublasHandle_t *h);
int kg_blas_destroy(CUcontext ctx, cublasHandle_t h);
int kg_blas_version(CUcontext ctx, cublasHandle_t h, int *v);
int kg_sgemm(CUcontext ctx, cublasHandle_t h, int ta, int tb, int m, int n, int k, float alpha,
             uint64_t a, int lda, uint64_t b, int ldb, float beta, uint64_t c, int ldc);
int kg_sgemm_batched(CUcontext ctx, cublasHandle_t h, int ta, int tb, int m, int n, int k, float alpha,
                     uint64_t a, int lda, long long sa, uint64_t b, int ldb, long long sb, float beta,
                     uint64_t c, int ldc, long long sc, int batch);

// cuFFT: batches of rows×cols complex64 images, contiguous, in place.
int kg_fft_plan(CUcontext ctx, CUstream s, int rows, int cols, int batch, cufftHandle *plan);
int kg_fft_destroy(CUcontext ctx, cufftHandle plan);
int kg_fft_exec(CUcontext ctx, cufftHandle plan, uint64_t data, int inverse);
int kg_fft_version(int *v);

// NVRTC (needs no GPU).
int kg_nvrtc_version(int *major, int *minor);
int kg_nvrtc_archs(int *archs, int max);
const char *kg_nvrtc_error(int code);
// kg_nvrtc_compile compiles src with the options; on success *out (malloc'd,
// the caller frees) holds the PTX or CUBIN image and *outlen its size. The
// log (warnings too) goes to *log (malloc'd, may be NULL).
int kg_nvrtc_compile(const char *src, const char *name, const char **opts, int nopts, int cubin,
                     char **out, size_t *outlen, char **log);

// The CPU emulator's entry points (see emu.go); fn is a dlsym'd symbol.
void *kg_dlopen(const char *path, char *err, int errlen);
void *kg_dlsym(void *h, const char *name);
void kg_dlclose(void *h);
int kg_emu_launch(void *fn, unsigned gx, unsigned gy, unsigned gz, unsigned bx, unsigned by, unsigned bz,
                  int order, const unsigned char *argbuf, const int *off, int nargs, char *err, int errlen);
const char *kg_emu_sig(void *fn);

#endif
