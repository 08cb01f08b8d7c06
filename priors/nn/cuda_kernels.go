//go:build cuda

package nn

import "github.com/kspaced/kspaced/internal/gpu"

func init() { gpu.RegisterSource("nn", cudaSource) }

// cudaSource holds the CUDA backend's kernels, compiled at run time by
// NVRTC. Elementwise kernels are grid-stride loops over long long indices;
// reductions give one BLOCK-thread block to each output and add in double
// in a fixed tree order, so results do not depend on scheduling. Threads
// only ever write elements no other thread of the launch touches, so
// nothing needs atomics.
const cudaSource = `
#define BLOCK 256
#define LOOP(i, n) for (long long i = blockIdx.x * (long long)blockDim.x + threadIdx.x; i < (n); \
	i += (long long)gridDim.x * blockDim.x)

// block_sum returns the sum of v over the block to every thread; s is a
// shared array of BLOCK doubles, free again when it returns.
__device__ double block_sum(double v, double* s) {
	int t = threadIdx.x;
	s[t] = v;
	__syncthreads();
	for (int h = BLOCK / 2; h > 0; h >>= 1) {
		if (t < h) s[t] += s[t + h];
		__syncthreads();
	}
	double r = s[0];
	__syncthreads();
	return r;
}

__device__ float block_max(float v, float* s) {
	int t = threadIdx.x;
	s[t] = v;
	__syncthreads();
	for (int h = BLOCK / 2; h > 0; h >>= 1) {
		if (t < h) s[t] = fmaxf(s[t], s[t + h]);
		__syncthreads();
	}
	float r = s[0];
	__syncthreads();
	return r;
}

extern "C" __global__ void nn_fill(float* d, float v, long long n) {
	LOOP(i, n) d[i] = v;
}

extern "C" __global__ void nn_axpby(float* d, const float* x, float a, float b, long long n) {
	// Same cases as the CPU: beta 0 must not read d (it may hold NaN).
	if (b == 1.0f) {
		LOOP(i, n) d[i] += a * x[i];
	} else if (b == 0.0f) {
		LOOP(i, n) d[i] = a * x[i];
	} else {
		LOOP(i, n) d[i] = a * x[i] + b * d[i];
	}
}

extern "C" __global__ void nn_scale_rows(float* c, int m, int n, int ldc, float beta) {
	LOOP(i, (long long)m * n) c[(i / n) * ldc + i % n] *= beta;
}

// nn_dot writes one partial sum per block; the host adds them.
extern "C" __global__ void nn_dot(double* part, const float* a, const float* b, long long n) {
	__shared__ double s[BLOCK];
	double acc = 0;
	LOOP(i, n) acc += (double)a[i] * (double)b[i];
	double r = block_sum(acc, s);
	if (threadIdx.x == 0) part[blockIdx.x] = r;
}

extern "C" __global__ void nn_silu(float* y, const float* x, long long n) {
	LOOP(i, n) {
		float v = x[i];
		y[i] = v * (1.0f / (1.0f + expf(-v)));
	}
}

extern "C" __global__ void nn_silu_bwd(float* dx, const float* dy, const float* x, long long n) {
	LOOP(i, n) {
		float v = x[i];
		float s = 1.0f / (1.0f + expf(-v));
		dx[i] += dy[i] * s * (1.0f + v * (1.0f - s));
	}
}

// y is [planes][inner]; plane p gets b[p % c], or b[p] per sample.
extern "C" __global__ void nn_add_bcast(float* y, const float* b, int c, long long inner, int per_sample, long long total) {
	LOOP(i, total) {
		long long p = i / inner;
		y[i] += b[per_sample ? p : p % c];
	}
}

// One block per output: db[o] += the sum of dy over the broadcast axes.
extern "C" __global__ void nn_sum_bcast(float* db, const float* dy, int n, int c, long long inner, int per_sample) {
	__shared__ double s[BLOCK];
	long long o = blockIdx.x;
	int imgs = per_sample ? 1 : n;
	double acc = 0;
	for (int b = 0; b < imgs; b++) {
		const float* row = per_sample ? dy + o * inner : dy + ((long long)b * c + o) * inner;
		for (long long j = threadIdx.x; j < inner; j += BLOCK) acc += row[j];
	}
	double r = block_sum(acc, s);
	if (threadIdx.x == 0) db[o] += (float)r;
}

// One block per row; y may be x.
extern "C" __global__ void nn_softmax(float* y, const float* x, int cols) {
	__shared__ float sm[BLOCK];
	__shared__ double sd[BLOCK];
	const float* xr = x + (long long)blockIdx.x * cols;
	float* yr = y + (long long)blockIdx.x * cols;
	float m = __int_as_float(0xff800000); // -inf
	for (int j = threadIdx.x; j < cols; j += BLOCK) m = fmaxf(m, xr[j]);
	m = block_max(m, sm);
	double acc = 0;
	for (int j = threadIdx.x; j < cols; j += BLOCK) {
		float e = expf(xr[j] - m);
		yr[j] = e;
		acc += e;
	}
	float inv = 1.0f / (float)block_sum(acc, sd);
	for (int j = threadIdx.x; j < cols; j += BLOCK) yr[j] *= inv;
}

// dx += y ⊙ (dy − Σ dy·y) per row.
extern "C" __global__ void nn_softmax_bwd(float* dx, const float* dy, const float* y, int cols) {
	__shared__ double sd[BLOCK];
	long long o = (long long)blockIdx.x * cols;
	double acc = 0;
	for (int j = threadIdx.x; j < cols; j += BLOCK) acc += dy[o + j] * y[o + j];
	float s = (float)block_sum(acc, sd);
	for (int j = threadIdx.x; j < cols; j += BLOCK) dx[o + j] += y[o + j] * (dy[o + j] - s);
}

// The four 2×2 resampling kernels run one thread per coarse pixel; h, w
// are the fine size. Each fine pixel belongs to one coarse pixel, so the
// accumulating ones need no atomics.
extern "C" __global__ void nn_avgpool2(float* y, const float* x, int h, int w, long long total) {
	int ho = h / 2, wo = w / 2;
	LOOP(i, total) {
		long long p = i / (ho * wo);
		int rem = (int)(i % (ho * wo)), r = rem / wo, q = rem % wo;
		const float* f = x + p * h * w + (long long)(2 * r) * w + 2 * q;
		y[i] = 0.25f * (f[0] + f[1] + f[w] + f[w + 1]);
	}
}

extern "C" __global__ void nn_avgpool2_bwd(float* dx, const float* dy, int h, int w, long long total) {
	int ho = h / 2, wo = w / 2;
	LOOP(i, total) {
		long long p = i / (ho * wo);
		int rem = (int)(i % (ho * wo)), r = rem / wo, q = rem % wo;
		float* f = dx + p * h * w + (long long)(2 * r) * w + 2 * q;
		float v = 0.25f * dy[i];
		f[0] += v;
		f[1] += v;
		f[w] += v;
		f[w + 1] += v;
	}
}

extern "C" __global__ void nn_upsample2(float* y, const float* x, int h, int w, long long total) {
	int ho = h / 2, wo = w / 2;
	LOOP(i, total) {
		long long p = i / (ho * wo);
		int rem = (int)(i % (ho * wo)), r = rem / wo, q = rem % wo;
		float* f = y + p * h * w + (long long)(2 * r) * w + 2 * q;
		float v = x[i];
		f[0] = v;
		f[1] = v;
		f[w] = v;
		f[w + 1] = v;
	}
}

extern "C" __global__ void nn_upsample2_bwd(float* dx, const float* dy, int h, int w, long long total) {
	int ho = h / 2, wo = w / 2;
	LOOP(i, total) {
		long long p = i / (ho * wo);
		int rem = (int)(i % (ho * wo)), r = rem / wo, q = rem % wo;
		const float* f = dy + p * h * w + (long long)(2 * r) * w + 2 * q;
		dx[i] += f[0] + f[1] + f[w] + f[w + 1];
	}
}

// y[b][k·r²+i·r+j][p][q] ↔ x[b][k][p·r+i][q·r+j], one thread per element of
// y (a bijection, so every thread owns its x element too).
extern "C" __global__ void nn_unshuffle(float* y, float* x, int c, int h, int w, int r, int inverse, int accumulate,
                                        long long total) {
	int ho = h / r, wo = w / r, rr = r * r;
	LOOP(idx, total) {
		long long t = idx;
		int q = (int)(t % wo);
		t /= wo;
		int p = (int)(t % ho);
		t /= ho;
		int cc = (int)(t % ((long long)c * rr));
		long long b = t / ((long long)c * rr);
		int k = cc / rr, i = (cc % rr) / r, j = cc % r;
		long long xi = ((b * c + k) * h + (p * r + i)) * (long long)w + q * r + j;
		if (!inverse) {
			if (accumulate) y[idx] += x[xi];
			else y[idx] = x[xi];
		} else {
			if (accumulate) x[xi] += y[idx];
			else x[xi] = y[idx];
		}
	}
}

// Sinusoidal embedding in double, as the CPU computes it.
extern "C" __global__ void nn_embed(float* y, const float* x, int n, int dim, float max_period) {
	int half = dim / 2;
	double lm = log((double)max_period);
	LOOP(idx, (long long)n * half) {
		int i = (int)(idx / half), k = (int)(idx % half);
		double a = (double)x[i] * exp(-lm * (double)k / (double)half);
		y[(long long)i * dim + k] = (float)cos(a);
		y[(long long)i * dim + half + k] = (float)sin(a);
	}
}

extern "C" __global__ void nn_embed_bwd(float* dx, const float* dy, const float* x, int n, int dim, float max_period) {
	int half = dim / 2;
	double lm = log((double)max_period);
	LOOP(i, n) {
		const float* row = dy + i * dim;
		double s = 0;
		for (int k = 0; k < half; k++) {
			double f = exp(-lm * (double)k / (double)half);
			double a = (double)x[i] * f;
			s += f * (-sin(a) * (double)row[k] + cos(a) * (double)row[half + k]);
		}
		dx[i] += (float)s;
	}
}

extern "C" __global__ void nn_adam(float* p, const float* g, float* m, float* v, float lr, float b1, float b2, float eps,
                                   float bc1, float bc2, long long n) {
	LOOP(i, n) {
		float gi = g[i];
		float mi = b1 * m[i] + (1.0f - b1) * gi;
		float vi = b2 * v[i] + (1.0f - b2) * gi * gi;
		m[i] = mi;
		v[i] = vi;
		p[i] -= lr * (mi / bc1) / (sqrtf(vi / bc2) + eps);
	}
}

// Group norm: one block per (image, group); statistics in double.
extern "C" __global__ void nn_gn_fwd(float* y, float* mean, float* rstd, const float* x, const float* gamma,
                                     const float* beta, int c, long long hw, int groups, float eps) {
	__shared__ double s[BLOCK];
	int st = blockIdx.x, b = st / groups, g = st % groups, cg = c / groups;
	long long size = cg * hw, off = ((long long)b * c + (long long)g * cg) * hw;
	const float* xs = x + off;
	float* ys = y + off;
	double acc = 0;
	for (long long i = threadIdx.x; i < size; i += BLOCK) acc += xs[i];
	double m = block_sum(acc, s) / (double)size;
	acc = 0;
	for (long long i = threadIdx.x; i < size; i += BLOCK) {
		double d = (double)xs[i] - m;
		acc += d * d;
	}
	double r = 1.0 / sqrt(block_sum(acc, s) / (double)size + (double)eps);
	if (threadIdx.x == 0) {
		mean[st] = (float)m;
		rstd[st] = (float)r;
	}
	float mf = (float)m, rf = (float)r;
	for (long long i = threadIdx.x; i < size; i += BLOCK) {
		int k = (int)(i / hw);
		float a = rf * gamma[g * cg + k];
		float bb = beta[g * cg + k] - mf * a;
		ys[i] = xs[i] * a + bb;
	}
}

// Per (image, channel): part[2·bc] = Σ dy, part[2·bc+1] = Σ dy·x̂.
extern "C" __global__ void nn_gn_bwd_part(float* part, const float* dy, const float* x, const float* mean,
                                          const float* rstd, int c, long long hw, int groups) {
	__shared__ double s[BLOCK];
	int bc = blockIdx.x, b = bc / c, ch = bc % c, g = ch / (c / groups);
	float m = mean[b * groups + g], r = rstd[b * groups + g];
	const float* xs = x + (long long)bc * hw;
	const float* ds = dy + (long long)bc * hw;
	double sd = 0, sdx = 0;
	for (long long i = threadIdx.x; i < hw; i += BLOCK) {
		float xh = (xs[i] - m) * r;
		sd += ds[i];
		sdx += ds[i] * xh;
	}
	double a = block_sum(sd, s);
	double e = block_sum(sdx, s);
	if (threadIdx.x == 0) {
		part[2 * bc] = (float)a;
		part[2 * bc + 1] = (float)e;
	}
}

// dgamma, dbeta (either may be null) += the partials over images, in image
// order like the CPU.
extern "C" __global__ void nn_gn_bwd_params(float* dgamma, float* dbeta, const float* part, int n, int c) {
	LOOP(ch, c) {
		for (int b = 0; b < n; b++) {
			long long bc = (long long)b * c + ch;
			if (dgamma) dgamma[ch] += part[2 * bc + 1];
			if (dbeta) dbeta[ch] += part[2 * bc];
		}
	}
}

// dx += rstd·(ĝ − mean(ĝ) − x̂·mean(ĝ·x̂)) with ĝ = dy·γ, one block per
// (image, group).
extern "C" __global__ void nn_gn_bwd_dx(float* dx, const float* dy, const float* x, const float* mean,
                                        const float* rstd, const float* gamma, const float* part, int c, long long hw,
                                        int groups) {
	int st = blockIdx.x, b = st / groups, g = st % groups, cg = c / groups, c0 = g * cg;
	float m = mean[st], r = rstd[st];
	double sg = 0, sgx = 0;
	for (int k = 0; k < cg; k++) {
		long long bc = (long long)b * c + c0 + k;
		double gm = gamma[c0 + k];
		sg += gm * (double)part[2 * bc];
		sgx += gm * (double)part[2 * bc + 1];
	}
	long long size = cg * hw, off = ((long long)b * c + c0) * hw;
	double inv = 1.0 / (double)size;
	float mg = (float)(sg * inv), mgx = (float)(sgx * inv);
	for (long long i = threadIdx.x; i < size; i += BLOCK) {
		float gm = gamma[c0 + (int)(i / hw)];
		float xh = (x[off + i] - m) * r;
		dx[off + i] += r * (dy[off + i] * gm - mg - xh * mgx);
	}
}

// Convolution layout moves (see cpu_conv.go): NCHW x (n images of c
// channels of h×w) into the zero-padded channel-major pad[c][n][hp][wp],
// the image at row and column offset po.
extern "C" __global__ void nn_pad(float* pad, const float* x, int n, int c, int h, int w, int hp, int wp, int po,
                                  long long total) {
	LOOP(i, total) {
		long long t = i;
		int col = (int)(t % wp);
		t /= wp;
		int row = (int)(t % hp);
		t /= hp;
		int b = (int)(t % n), ch = (int)(t / n);
		int r = row - po, q = col - po;
		pad[i] = (r >= 0 && r < h && q >= 0 && q < w) ? x[(((long long)b * c + ch) * h + r) * w + q] : 0.0f;
	}
}

// The reverse: y[b][ch][r][q] = pad[ch][b][r+po][q+po] (+ bias[ch]), or +=
// when accumulate.
extern "C" __global__ void nn_unpad(float* y, const float* pad, const float* bias, int n, int c, int h, int w, int hp,
                                    int wp, int po, int accumulate, long long total) {
	LOOP(i, total) {
		long long t = i;
		int q = (int)(t % w);
		t /= w;
		int r = (int)(t % h);
		t /= h;
		int ch = (int)(t % c), b = (int)(t / c);
		float v = pad[(((long long)ch * n + b) * hp + r + po) * wp + q + po];
		if (accumulate) y[i] += v;
		else y[i] = v + (bias ? bias[ch] : 0.0f);
	}
}

// wt[k][co][ci] = w[co][ci][k], or w += wt laid out so when back.
extern "C" __global__ void nn_taps(float* wt, float* w, int cout, int cin, int kk, int back, long long total) {
	LOOP(i, total) {
		int k = (int)(i % kk);
		long long t = i / kk;
		int ci = (int)(t % cin), co = (int)(t / cin);
		long long j = ((long long)k * cout + co) * cin + ci;
		if (back) w[i] += wt[j];
		else wt[j] = w[i];
	}
}
`
