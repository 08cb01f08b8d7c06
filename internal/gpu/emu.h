#ifndef KSPACED_GPU_EMU_H
#define KSPACED_GPU_EMU_H
#include <stddef.h>
#include <stdint.h>
uint64_t emu_alloc(size_t bytes, uint64_t *base, size_t *maplen);
void emu_unmap(uint64_t base, size_t len);
void emu_memset32(uint64_t p, unsigned v, size_t n);
void emu_memcpy(uint64_t dst, uint64_t src, size_t n);
void emu_htod(uint64_t dst, const void *src, size_t n);
void emu_dtoh(void *dst, uint64_t src, size_t n);
int emu_sgemm(int tf, int ta, int tb, int m, int n, int k, float alpha, uint64_t a, int lda, uint64_t b, int ldb,
              float beta, uint64_t c, int ldc);
int emu_sgemm_batched(int tf, int ta, int tb, int m, int n, int k, float alpha, uint64_t a, int lda, long long sa,
                      uint64_t b, int ldb, long long sb, float beta, uint64_t c, int ldc, long long sc, int batch);
int emu_fft(uint64_t data, int rows, int cols, int batch, int inverse);
#endif
