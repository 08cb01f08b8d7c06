//go:build cuda

package gpu

import (
	"os"
	"os/exec"
	"path/filepath"
	"testing"
)

// TestDeclsMatchHeaders compiles cuda_decls.h in check mode after the
// real CUDA headers (every prototype must be a compatible redeclaration,
// the type sizes must agree), then prints the constants dl.c uses under
// either set of declarations and compares. It skips where the headers
// (nvidia-cuda-dev, or a CUDA toolkit) are not installed.
func TestDeclsMatchHeaders(t *testing.T) {
	cc, err := exec.LookPath("gcc")
	if err != nil {
		t.Skip("no gcc")
	}
	if !BuiltWithCUDAHeaders() {
		t.Skip("CUDA headers not installed: the package was built from cuda_decls.h")
	}
	dir := t.TempDir()
	wd, _ := os.Getwd()
	real := "#include <cuda.h>\n#include <cublas_v2.h>\n#include <cufft.h>\n#include <nvrtc.h>\n"
	build := func(name, code string, run bool) string {
		src := filepath.Join(dir, name+".c")
		if err := os.WriteFile(src, []byte(code), 0o644); err != nil {
			t.Fatal(err)
		}
		args := []string{"-std=gnu11", "-Wall", "-Werror", "-I/usr/local/cuda/include", "-I" + wd, src}
		if run {
			args = append(args, "-o", filepath.Join(dir, name))
		} else {
			args = append(args, "-fsyntax-only")
		}
		if out, err := exec.Command(cc, args...).CombinedOutput(); err != nil {
			t.Fatalf("%s: %v\n%s", name, err, out)
		}
		if !run {
			return ""
		}
		out, err := exec.Command(filepath.Join(dir, name)).Output()
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		return string(out)
	}
	build("check", real+"#define KG_CHECK_DECLS 1\n#include \"cuda_decls.h\"\n", false)
	printer := `
#include <stdio.h>
int main(void) {
	printf("%d %d %d %d %d %d %d %d\n", CUDA_SUCCESS, CUDA_ERROR_INVALID_VALUE, CU_STREAM_NON_BLOCKING,
	       CU_DEVICE_ATTRIBUTE_MULTIPROCESSOR_COUNT, CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MAJOR,
	       CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MINOR, CU_JIT_ERROR_LOG_BUFFER, CU_JIT_ERROR_LOG_BUFFER_SIZE_BYTES);
	printf("%d %d %d %d %d\n", CUBLAS_STATUS_SUCCESS, CUBLAS_OP_N, CUBLAS_OP_T, CUBLAS_DEFAULT_MATH,
	       CUBLAS_TF32_TENSOR_OP_MATH);
	printf("%d %d %d %d\n", CUFFT_SUCCESS, CUFFT_C2C, CUFFT_FORWARD, CUFFT_INVERSE);
	printf("%d %d %d\n", NVRTC_SUCCESS, NVRTC_ERROR_OUT_OF_MEMORY, NVRTC_ERROR_INVALID_OPTION);
	puts(STR(cuInit));
	puts(STR(cuDriverGetVersion));
	puts(STR(cuDeviceGetCount));
	puts(STR(cuDeviceGet));
	puts(STR(cuDeviceGetName));
	puts(STR(cuDeviceGetAttribute));
	puts(STR(cuDeviceTotalMem));
	puts(STR(cuDevicePrimaryCtxRetain));
	puts(STR(cuDevicePrimaryCtxRelease));
	puts(STR(cuCtxSetCurrent));
	puts(STR(cuStreamCreate));
	puts(STR(cuStreamDestroy));
	puts(STR(cuStreamSynchronize));
	puts(STR(cuMemAlloc));
	puts(STR(cuMemFree));
	puts(STR(cuMemGetInfo));
	puts(STR(cuMemsetD32Async));
	puts(STR(cuMemcpyHtoDAsync));
	puts(STR(cuMemcpyDtoHAsync));
	puts(STR(cuMemcpyDtoDAsync));
	puts(STR(cuModuleLoadDataEx));
	puts(STR(cuModuleUnload));
	puts(STR(cuModuleGetFunction));
	puts(STR(cuLaunchKernel));
	puts(STR(cuGetErrorName));
	puts(STR(cublasCreate));
	puts(STR(cublasDestroy));
	puts(STR(cublasGetVersion));
	puts(STR(cublasSetStream));
	puts(STR(cublasSetMathMode));
	puts(STR(cublasSgemm));
	puts(STR(cublasSgemmStridedBatched));
	return 0;
}
`
	str := "#define STR_(x) #x\n#define STR(x) STR_(x)\n"
	want := build("real", real+str+printer, true)
	got := build("own", str+"#include \"cuda_decls.h\"\n"+printer, true)
	if got != want {
		t.Fatalf("constants differ:\nheaders:     %scuda_decls.h: %s", want, got)
	}
	t.Logf("constants and symbol names agree")
}
