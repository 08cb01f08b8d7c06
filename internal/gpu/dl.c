//go:build cuda

#include <dlfcn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "dl.h"

#define KG_STR_(x) #x
#define KG_STR(x) KG_STR_(x)
// Pointer to a function with the header's prototype. The header maps some
// names to versioned symbols (cuMemAlloc → cuMemAlloc_v2); KG_STR expands
// the macro first, so dlsym asks for the symbol the header means.
#define KG_PTR(name) static __typeof__(&name) p_##name
#define KG_SYM(h, name, optional)                                              \
	do {                                                                       \
		p_##name = (__typeof__(&name))dlsym(h, KG_STR(name));                  \
		if (!p_##name && !(optional)) {                                        \
			snprintf(err, errlen, "%s: symbol %s missing", path, KG_STR(name)); \
			return -1;                                                         \
		}                                                                      \
	} while (0)

KG_PTR(cuInit);
KG_PTR(cuDriverGetVersion);
KG_PTR(cuDeviceGetCount);
KG_PTR(cuDeviceGet);
KG_PTR(cuDeviceGetName);
KG_PTR(cuDeviceGetAttribute);
KG_PTR(cuDeviceTotalMem);
KG_PTR(cuDevicePrimaryCtxRetain);
KG_PTR(cuDevicePrimaryCtxRelease);
KG_PTR(cuCtxSetCurrent);
KG_PTR(cuStreamCreate);
KG_PTR(cuStreamDestroy);
KG_PTR(cuStreamSynchronize);
KG_PTR(cuMemAlloc);
KG_PTR(cuMemFree);
KG_PTR(cuMemGetInfo);
KG_PTR(cuMemsetD32Async);
KG_PTR(cuMemcpyHtoDAsync);
KG_PTR(cuMemcpyDtoHAsync);
KG_PTR(cuMemcpyDtoDAsync);
KG_PTR(cuModuleLoadDataEx);
KG_PTR(cuModuleUnload);
KG_PTR(cuModuleGetFunction);
KG_PTR(cuLaunchKernel);
KG_PTR(cuGetErrorName);

KG_PTR(cublasCreate);
KG_PTR(cublasDestroy);
KG_PTR(cublasGetVersion);
KG_PTR(cublasSetStream);
KG_PTR(cublasSetMathMode);
KG_PTR(cublasSgemm);
KG_PTR(cublasSgemmStridedBatched);

KG_PTR(cufftPlanMany);
KG_PTR(cufftDestroy);
KG_PTR(cufftExecC2C);
KG_PTR(cufftSetStream);
KG_PTR(cufftGetVersion);

KG_PTR(nvrtcVersion);
KG_PTR(nvrtcGetNumSupportedArchs);
KG_PTR(nvrtcGetSupportedArchs);
KG_PTR(nvrtcGetErrorString);
KG_PTR(nvrtcCreateProgram);
KG_PTR(nvrtcDestroyProgram);
KG_PTR(nvrtcCompileProgram);
KG_PTR(nvrtcGetProgramLogSize);
KG_PTR(nvrtcGetProgramLog);
KG_PTR(nvrtcGetPTXSize);
KG_PTR(nvrtcGetPTX);
KG_PTR(nvrtcGetCUBINSize);
KG_PTR(nvrtcGetCUBIN);

// Sonames newest first; the unversioned names (development symlinks) last.
static const char *kg_names[KG_NLIBS][8] = {
	{"libcuda.so.1", "libcuda.so", 0},
	{"libcublas.so.13", "libcublas.so.12", "libcublas.so.11", "/usr/local/cuda/lib64/libcublas.so", "libcublas.so", 0},
	{"libcufft.so.12", "libcufft.so.11", "libcufft.so.10", "/usr/local/cuda/lib64/libcufft.so", "libcufft.so", 0},
	{"libnvrtc.so.13", "libnvrtc.so.12", "libnvrtc.so.11.2", "/usr/local/cuda/lib64/libnvrtc.so", "libnvrtc.so", 0},
};
static void *kg_handles[KG_NLIBS];
static char kg_paths[KG_NLIBS][256];

static int kg_resolve(int lib, void *h, const char *path, char *err, int errlen) {
	switch (lib) {
	case KG_LIB_CUDA:
		KG_SYM(h, cuInit, 0);
		KG_SYM(h, cuDriverGetVersion, 0);
		KG_SYM(h, cuDeviceGetCount, 0);
		KG_SYM(h, cuDeviceGet, 0);
		KG_SYM(h, cuDeviceGetName, 0);
		KG_SYM(h, cuDeviceGetAttribute, 0);
		KG_SYM(h, cuDeviceTotalMem, 0);
		KG_SYM(h, cuDevicePrimaryCtxRetain, 0);
		KG_SYM(h, cuDevicePrimaryCtxRelease, 0);
		KG_SYM(h, cuCtxSetCurrent, 0);
		KG_SYM(h, cuStreamCreate, 0);
		KG_SYM(h, cuStreamDestroy, 0);
		KG_SYM(h, cuStreamSynchronize, 0);
		KG_SYM(h, cuMemAlloc, 0);
		KG_SYM(h, cuMemFree, 0);
		KG_SYM(h, cuMemGetInfo, 0);
		KG_SYM(h, cuMemsetD32Async, 0);
		KG_SYM(h, cuMemcpyHtoDAsync, 0);
		KG_SYM(h, cuMemcpyDtoHAsync, 0);
		KG_SYM(h, cuMemcpyDtoDAsync, 0);
		KG_SYM(h, cuModuleLoadDataEx, 0);
		KG_SYM(h, cuModuleUnload, 0);
		KG_SYM(h, cuModuleGetFunction, 0);
		KG_SYM(h, cuLaunchKernel, 0);
		KG_SYM(h, cuGetErrorName, 0);
		break;
	case KG_LIB_CUBLAS:
		KG_SYM(h, cublasCreate, 0);
		KG_SYM(h, cublasDestroy, 0);
		KG_SYM(h, cublasGetVersion, 0);
		KG_SYM(h, cublasSetStream, 0);
		KG_SYM(h, cublasSetMathMode, 0);
		KG_SYM(h, cublasSgemm, 0);
		KG_SYM(h, cublasSgemmStridedBatched, 0);
		break;
	case KG_LIB_CUFFT:
		KG_SYM(h, cufftPlanMany, 0);
		KG_SYM(h, cufftDestroy, 0);
		KG_SYM(h, cufftExecC2C, 0);
		KG_SYM(h, cufftSetStream, 0);
		KG_SYM(h, cufftGetVersion, 0);
		break;
	case KG_LIB_NVRTC:
		KG_SYM(h, nvrtcVersion, 0);
		KG_SYM(h, nvrtcGetNumSupportedArchs, 1);
		KG_SYM(h, nvrtcGetSupportedArchs, 1);
		KG_SYM(h, nvrtcGetErrorString, 0);
		KG_SYM(h, nvrtcCreateProgram, 0);
		KG_SYM(h, nvrtcDestroyProgram, 0);
		KG_SYM(h, nvrtcCompileProgram, 0);
		KG_SYM(h, nvrtcGetProgramLogSize, 0);
		KG_SYM(h, nvrtcGetProgramLog, 0);
		KG_SYM(h, nvrtcGetPTXSize, 0);
		KG_SYM(h, nvrtcGetPTX, 0);
		KG_SYM(h, nvrtcGetCUBINSize, 1);
		KG_SYM(h, nvrtcGetCUBIN, 1);
		break;
	}
	return 0;
}

int kg_load(int lib, char *err, int errlen) {
	if (lib < 0 || lib >= KG_NLIBS) {
		snprintf(err, errlen, "no library group %d", lib);
		return -1;
	}
	if (kg_handles[lib]) return 0;
	char tried[1024] = "";
	for (int i = 0; kg_names[lib][i]; i++) {
		const char *path = kg_names[lib][i];
		void *h = dlopen(path, RTLD_NOW | RTLD_LOCAL);
		if (!h) {
			const char *e = dlerror();
			size_t l = strlen(tried);
			snprintf(tried + l, sizeof tried - l, "%s%s", l ? "; " : "", e ? e : path);
			continue;
		}
		if (kg_resolve(lib, h, path, err, errlen) != 0) {
			dlclose(h);
			return -1;
		}
		kg_handles[lib] = h;
		snprintf(kg_paths[lib], sizeof kg_paths[lib], "%s", path);
		return 0;
	}
	snprintf(err, errlen, "%s", tried);
	return -1;
}

int kg_cuda_headers(void) {
#ifdef KG_CUDA_HEADERS
	return 1;
#else
	return 0;
#endif
}

const char *kg_loaded_path(int lib) {
	if (lib < 0 || lib >= KG_NLIBS) return "";
	return kg_paths[lib];
}

#define KG_CUR(ctx)                              \
	do {                                         \
		CUresult r_ = p_cuCtxSetCurrent(ctx);    \
		if (r_ != CUDA_SUCCESS) return (int)r_;  \
	} while (0)

int kg_init(void) { return (int)p_cuInit(0); }
int kg_driver_version(int *v) { return (int)p_cuDriverGetVersion(v); }
int kg_device_count(int *n) { return (int)p_cuDeviceGetCount(n); }
int kg_device_get(int ordinal, CUdevice *dev) { return (int)p_cuDeviceGet(dev, ordinal); }
int kg_device_name(CUdevice dev, char *name, int len) { return (int)p_cuDeviceGetName(name, len, dev); }
int kg_device_attr(CUdevice dev, int attr, int *v) { return (int)p_cuDeviceGetAttribute(v, (CUdevice_attribute)attr, dev); }
int kg_device_total_mem(CUdevice dev, size_t *bytes) { return (int)p_cuDeviceTotalMem(bytes, dev); }
int kg_primary_ctx_retain(CUdevice dev, CUcontext *ctx) { return (int)p_cuDevicePrimaryCtxRetain(ctx, dev); }
int kg_primary_ctx_release(CUdevice dev) { return (int)p_cuDevicePrimaryCtxRelease(dev); }

int kg_stream_create(CUcontext ctx, CUstream *s) {
	KG_CUR(ctx);
	return (int)p_cuStreamCreate(s, CU_STREAM_NON_BLOCKING);
}
int kg_stream_destroy(CUcontext ctx, CUstream s) {
	KG_CUR(ctx);
	return (int)p_cuStreamDestroy(s);
}
int kg_stream_sync(CUcontext ctx, CUstream s) {
	KG_CUR(ctx);
	return (int)p_cuStreamSynchronize(s);
}
int kg_mem_alloc(CUcontext ctx, uint64_t *p, size_t bytes) {
	KG_CUR(ctx);
	CUdeviceptr d = 0;
	CUresult r = p_cuMemAlloc(&d, bytes);
	*p = (uint64_t)d;
	return (int)r;
}
int kg_mem_free(CUcontext ctx, uint64_t p) {
	KG_CUR(ctx);
	return (int)p_cuMemFree((CUdeviceptr)p);
}
int kg_mem_info(CUcontext ctx, size_t *free_b, size_t *total_b) {
	KG_CUR(ctx);
	return (int)p_cuMemGetInfo(free_b, total_b);
}
int kg_memset32(CUcontext ctx, CUstream s, uint64_t p, unsigned v, size_t n) {
	KG_CUR(ctx);
	return (int)p_cuMemsetD32Async((CUdeviceptr)p, v, n, s);
}
int kg_htod(CUcontext ctx, CUstream s, uint64_t dst, const void *src, size_t bytes) {
	KG_CUR(ctx);
	return (int)p_cuMemcpyHtoDAsync((CUdeviceptr)dst, src, bytes, s);
}
int kg_dtoh(CUcontext ctx, CUstream s, void *dst, uint64_t src, size_t bytes) {
	KG_CUR(ctx);
	CUresult r = p_cuMemcpyDtoHAsync(dst, (CUdeviceptr)src, bytes, s);
	if (r != CUDA_SUCCESS) return (int)r;
	// The destination is Go memory, valid only during this call.
	return (int)p_cuStreamSynchronize(s);
}
int kg_dtod(CUcontext ctx, CUstream s, uint64_t dst, uint64_t src, size_t bytes) {
	KG_CUR(ctx);
	return (int)p_cuMemcpyDtoDAsync((CUdeviceptr)dst, (CUdeviceptr)src, bytes, s);
}
int kg_module_load(CUcontext ctx, CUmodule *m, const void *image, char *log, int loglen) {
	KG_CUR(ctx);
	CUjit_option opts[2] = {CU_JIT_ERROR_LOG_BUFFER, CU_JIT_ERROR_LOG_BUFFER_SIZE_BYTES};
	void *vals[2] = {log, (void *)(uintptr_t)loglen};
	if (loglen > 0) log[0] = 0;
	return (int)p_cuModuleLoadDataEx(m, image, loglen > 0 ? 2 : 0, opts, vals);
}
int kg_module_unload(CUcontext ctx, CUmodule m) {
	KG_CUR(ctx);
	return (int)p_cuModuleUnload(m);
}
int kg_module_function(CUcontext ctx, CUmodule m, const char *name, CUfunction *f) {
	KG_CUR(ctx);
	return (int)p_cuModuleGetFunction(f, m, name);
}

#define KG_MAXARGS 32

int kg_launch(CUcontext ctx, CUstream s, CUfunction f, unsigned gx, unsigned gy, unsigned gz,
              unsigned bx, unsigned by, unsigned bz, unsigned shmem,
              const unsigned char *argbuf, const int *off, int nargs) {
	if (nargs > KG_MAXARGS) return (int)CUDA_ERROR_INVALID_VALUE;
	void *params[KG_MAXARGS];
	for (int i = 0; i < nargs; i++) params[i] = (void *)(argbuf + off[i]);
	KG_CUR(ctx);
	return (int)p_cuLaunchKernel(f, gx, gy, gz, bx, by, bz, shmem, s, params, NULL);
}

const char *kg_error_name(int code) {
	const char *s = NULL;
	if (p_cuGetErrorName && p_cuGetErrorName((CUresult)code, &s) == CUDA_SUCCESS && s) return s;
	return "unknown CUDA error";
}

int kg_blas_create(CUcontext ctx, CUstream s, int tf32, cublasHandle_t *h) {
	KG_CUR(ctx);
	cublasStatus_t st = p_cublasCreate(h);
	if (st != CUBLAS_STATUS_SUCCESS) return (int)st;
	st = p_cublasSetStream(*h, s);
	if (st == CUBLAS_STATUS_SUCCESS)
		st = p_cublasSetMathMode(*h, tf32 ? CUBLAS_TF32_TENSOR_OP_MATH : CUBLAS_DEFAULT_MATH);
	if (st != CUBLAS_STATUS_SUCCESS) p_cublasDestroy(*h);
	return (int)st;
}
int kg_blas_destroy(CUcontext ctx, cublasHandle_t h) {
	KG_CUR(ctx);
	return (int)p_cublasDestroy(h);
}
int kg_blas_version(CUcontext ctx, cublasHandle_t h, int *v) {
	KG_CUR(ctx);
	return (int)p_cublasGetVersion(h, v);
}

static cublasOperation_t kg_op(int t) { return t ? CUBLAS_OP_T : CUBLAS_OP_N; }

int kg_sgemm(CUcontext ctx, cublasHandle_t h, int ta, int tb, int m, int n, int k, float alpha,
             uint64_t a, int lda, uint64_t b, int ldb, float beta, uint64_t c, int ldc) {
	KG_CUR(ctx);
	return (int)p_cublasSgemm(h, kg_op(ta), kg_op(tb), m, n, k, &alpha, (const float *)(uintptr_t)a, lda,
	                          (const float *)(uintptr_t)b, ldb, &beta, (float *)(uintptr_t)c, ldc);
}
int kg_sgemm_batched(CUcontext ctx, cublasHandle_t h, int ta, int tb, int m, int n, int k, float alpha,
                     uint64_t a, int lda, long long sa, uint64_t b, int ldb, long long sb, float beta,
                     uint64_t c, int ldc, long long sc, int batch) {
	KG_CUR(ctx);
	return (int)p_cublasSgemmStridedBatched(h, kg_op(ta), kg_op(tb), m, n, k, &alpha,
	                                        (const float *)(uintptr_t)a, lda, sa, (const float *)(uintptr_t)b, ldb, sb,
	                                        &beta, (float *)(uintptr_t)c, ldc, sc, batch);
}

int kg_fft_plan(CUcontext ctx, CUstream s, int rows, int cols, int batch, cufftHandle *plan) {
	KG_CUR(ctx);
	int n[2] = {rows, cols};
	// NULL embeds: contiguous images, batch distance rows·cols.
	cufftResult r = p_cufftPlanMany(plan, 2, n, NULL, 1, rows * cols, NULL, 1, rows * cols, CUFFT_C2C, batch);
	if (r != CUFFT_SUCCESS) return (int)r;
	r = p_cufftSetStream(*plan, s);
	if (r != CUFFT_SUCCESS) p_cufftDestroy(*plan);
	return (int)r;
}
int kg_fft_destroy(CUcontext ctx, cufftHandle plan) {
	KG_CUR(ctx);
	return (int)p_cufftDestroy(plan);
}
int kg_fft_exec(CUcontext ctx, cufftHandle plan, uint64_t data, int inverse) {
	KG_CUR(ctx);
	cufftComplex *d = (cufftComplex *)(uintptr_t)data;
	return (int)p_cufftExecC2C(plan, d, d, inverse ? CUFFT_INVERSE : CUFFT_FORWARD);
}
int kg_fft_version(int *v) { return (int)p_cufftGetVersion(v); }

int kg_nvrtc_version(int *major, int *minor) { return (int)p_nvrtcVersion(major, minor); }

int kg_nvrtc_archs(int *archs, int max) {
	if (!p_nvrtcGetNumSupportedArchs || !p_nvrtcGetSupportedArchs) return -1;
	int n = 0;
	if (p_nvrtcGetNumSupportedArchs(&n) != NVRTC_SUCCESS || n > max) return -1;
	if (p_nvrtcGetSupportedArchs(archs) != NVRTC_SUCCESS) return -1;
	return n;
}

const char *kg_nvrtc_error(int code) { return p_nvrtcGetErrorString((nvrtcResult)code); }

int kg_nvrtc_compile(const char *src, const char *name, const char **opts, int nopts, int cubin,
                     char **out, size_t *outlen, char **log) {
	*out = NULL;
	*outlen = 0;
	*log = NULL;
	if (cubin && (!p_nvrtcGetCUBINSize || !p_nvrtcGetCUBIN)) return (int)NVRTC_ERROR_INVALID_OPTION;
	nvrtcProgram prog;
	nvrtcResult r = p_nvrtcCreateProgram(&prog, src, name, 0, NULL, NULL);
	if (r != NVRTC_SUCCESS) return (int)r;
	nvrtcResult cr = p_nvrtcCompileProgram(prog, nopts, opts);
	size_t ls = 0;
	if (p_nvrtcGetProgramLogSize(prog, &ls) == NVRTC_SUCCESS && ls > 1) {
		*log = (char *)malloc(ls);
		if (*log && p_nvrtcGetProgramLog(prog, *log) != NVRTC_SUCCESS) (*log)[0] = 0;
	}
	if (cr != NVRTC_SUCCESS) {
		p_nvrtcDestroyProgram(&prog);
		return (int)cr;
	}
	size_t n = 0;
	r = cubin ? p_nvrtcGetCUBINSize(prog, &n) : p_nvrtcGetPTXSize(prog, &n);
	if (r == NVRTC_SUCCESS) {
		*out = (char *)malloc(n);
		if (!*out) r = NVRTC_ERROR_OUT_OF_MEMORY;
		else r = cubin ? p_nvrtcGetCUBIN(prog, *out) : p_nvrtcGetPTX(prog, *out);
		if (r == NVRTC_SUCCESS) *outlen = n;
	}
	p_nvrtcDestroyProgram(&prog);
	return (int)r;
}

void *kg_dlopen(const char *path, char *err, int errlen) {
	void *h = dlopen(path, RTLD_NOW | RTLD_LOCAL);
	if (!h) snprintf(err, errlen, "%s", dlerror());
	return h;
}
void *kg_dlsym(void *h, const char *name) { return dlsym(h, name); }
void kg_dlclose(void *h) { dlclose(h); }

typedef int (*kg_emu_fn)(unsigned, unsigned, unsigned, unsigned, unsigned, unsigned, int, void **, char *, int);
typedef const char *(*kg_emu_sig_fn)(void);

int kg_emu_launch(void *fn, unsigned gx, unsigned gy, unsigned gz, unsigned bx, unsigned by, unsigned bz,
                  int order, const unsigned char *argbuf, const int *off, int nargs, char *err, int errlen) {
	if (nargs > KG_MAXARGS) {
		snprintf(err, errlen, "%d kernel arguments, at most %d", nargs, KG_MAXARGS);
		return -1;
	}
	void *params[KG_MAXARGS];
	for (int i = 0; i < nargs; i++) params[i] = (void *)(argbuf + off[i]);
	return ((kg_emu_fn)fn)(gx, gy, gz, bx, by, bz, order, params, err, errlen);
}
const char *kg_emu_sig(void *fn) { return ((kg_emu_sig_fn)fn)(); }
