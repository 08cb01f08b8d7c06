//go:build cuda

// The emulator's host side: guarded memory, and reference cuBLAS and cuFFT
// with the libraries' argument conventions.
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>
#include "emu.h"

// emu_alloc maps bytes so that the block ends 16-byte aligned right before
// an inaccessible page: a kernel running past the end faults at once.
uint64_t emu_alloc(size_t bytes, uint64_t *base, size_t *maplen) {
	size_t pg = (size_t)sysconf(_SC_PAGESIZE);
	size_t body = (bytes + 15) & ~(size_t)15;
	size_t len = (body + pg - 1) / pg * pg + pg;
	void *m = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (m == MAP_FAILED) return 0;
	if (mprotect((char *)m + len - pg, pg, PROT_NONE) != 0) {
		munmap(m, len);
		return 0;
	}
	char *p = (char *)m + len - pg - body;
	memset(p, 0xff, body); // NaN: reading memory nobody wrote shows up
	*base = (uint64_t)(uintptr_t)m;
	*maplen = len;
	return (uint64_t)(uintptr_t)p;
}

void emu_unmap(uint64_t base, size_t len) { munmap((void *)(uintptr_t)base, len); }

void emu_memset32(uint64_t p, unsigned v, size_t n) {
	unsigned *d = (unsigned *)(uintptr_t)p;
	for (size_t i = 0; i < n; i++) d[i] = v;
}

void emu_memcpy(uint64_t dst, uint64_t src, size_t n) { memmove((void *)(uintptr_t)dst, (void *)(uintptr_t)src, n); }
void emu_htod(uint64_t dst, const void *src, size_t n) { memcpy((void *)(uintptr_t)dst, src, n); }
void emu_dtoh(void *dst, uint64_t src, size_t n) { memcpy(dst, (void *)(uintptr_t)src, n); }

// tf32 rounds to the 10-bit mantissa TF32 tensor cores multiply with.
static float tf32(float x) {
	uint32_t u;
	memcpy(&u, &x, 4);
	if ((u & 0x7f800000u) != 0x7f800000u) {
		u += 0xfffu + ((u >> 13) & 1u);
		u &= ~0x1fffu;
	}
	memcpy(&x, &u, 4);
	return x;
}

// emu_sgemm is cublasSgemm: column-major, C = alpha·op(A)·op(B) + beta·C,
// C not read when beta is 0. It returns cuBLAS's status codes.
int emu_sgemm(int tf, int ta, int tb, int m, int n, int k, float alpha, uint64_t ap, int lda,
              uint64_t bp, int ldb, float beta, uint64_t cp, int ldc) {
	const float *A = (const float *)(uintptr_t)ap, *B = (const float *)(uintptr_t)bp;
	float *C = (float *)(uintptr_t)cp;
	int rowsA = ta ? k : m, rowsB = tb ? n : k;
	if (m < 0 || n < 0 || k < 0 || lda < (rowsA > 1 ? rowsA : 1) || ldb < (rowsB > 1 ? rowsB : 1) ||
	    ldc < (m > 1 ? m : 1))
		return 7; // CUBLAS_STATUS_INVALID_VALUE
	for (int j = 0; j < n; j++) {
		for (int i = 0; i < m; i++) {
			double s = 0;
			for (int l = 0; l < k; l++) {
				float a = ta ? A[l + (size_t)i * lda] : A[i + (size_t)l * lda];
				float b = tb ? B[j + (size_t)l * ldb] : B[l + (size_t)j * ldb];
				if (tf) {
					a = tf32(a);
					b = tf32(b);
				}
				s += (double)a * (double)b;
			}
			float *c = &C[i + (size_t)j * ldc];
			double v = (double)alpha * s;
			if (beta != 0) v += (double)beta * (double)*c;
			*c = (float)v;
		}
	}
	return 0;
}

int emu_sgemm_batched(int tf, int ta, int tb, int m, int n, int k, float alpha, uint64_t a, int lda,
                      long long sa, uint64_t b, int ldb, long long sb, float beta, uint64_t c, int ldc,
                      long long sc, int batch) {
	if (batch < 0) return 7;
	for (int i = 0; i < batch; i++) {
		int r = emu_sgemm(tf, ta, tb, m, n, k, alpha, a + 4 * (uint64_t)(i * sa), lda, b + 4 * (uint64_t)(i * sb),
		                  ldb, beta, c + 4 * (uint64_t)(i * sc), ldc);
		if (r) return r;
	}
	return 0;
}

// dft1 transforms n values spaced stride apart in place, unnormalised, in
// double; tw holds e^{±2πi·m/n}.
static void dft1(float *d, long stride, int n, const double *tw, double *tmp) {
	for (int k = 0; k < n; k++) {
		double re = 0, im = 0;
		long m = 0; // j·k mod n
		for (int j = 0; j < n; j++) {
			double c = tw[2 * m], s = tw[2 * m + 1];
			double xr = d[2 * j * stride], xi = d[2 * j * stride + 1];
			re += xr * c - xi * s;
			im += xr * s + xi * c;
			m += k;
			if (m >= n) m -= n;
		}
		tmp[2 * k] = re;
		tmp[2 * k + 1] = im;
	}
	for (int k = 0; k < n; k++) {
		d[2 * k * stride] = (float)tmp[2 * k];
		d[2 * k * stride + 1] = (float)tmp[2 * k + 1];
	}
}

static void twiddles(double *tw, int n, int sign) {
	for (int m = 0; m < n; m++) {
		double a = sign * 2 * M_PI * (double)m / n;
		tw[2 * m] = cos(a);
		tw[2 * m + 1] = sin(a);
	}
}

// emu_fft is cufftExecC2C of a plan made by cufftPlanMany(rank 2, {rows,
// cols}, NULL embeds, batch): contiguous images, in place, unnormalised.
int emu_fft(uint64_t data, int rows, int cols, int batch, int inverse) {
	float *d = (float *)(uintptr_t)data;
	int sign = inverse ? 1 : -1;
	int big = rows > cols ? rows : cols;
	double *tmp = (double *)malloc(sizeof(double) * 2 * big);
	double *twr = (double *)malloc(sizeof(double) * 2 * rows);
	double *twc = (double *)malloc(sizeof(double) * 2 * cols);
	if (!tmp || !twr || !twc) {
		free(tmp);
		free(twr);
		free(twc);
		return 2; // CUFFT_ALLOC_FAILED
	}
	twiddles(twr, rows, sign);
	twiddles(twc, cols, sign);
	for (int b = 0; b < batch; b++) {
		float *img = d + 2 * (size_t)b * rows * cols;
		for (int r = 0; r < rows; r++) dft1(img + 2 * (size_t)r * cols, 1, cols, twc, tmp);
		for (int c = 0; c < cols; c++) dft1(img + 2 * c, cols, rows, twr, tmp);
	}
	free(tmp);
	free(twr);
	free(twc);
	return 0;
}
