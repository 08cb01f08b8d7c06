//go:build cuda

package gpu

// emuPrelude makes a CUDA C kernel source valid C++ for the host compiler:
// the CUDA built-ins become globals the scheduler sets, __shared__ arrays
// become function statics (shared by the threads of the running block, as
// blocks run one at a time), and each thread runs as a fiber that
// __syncthreads suspends until every thread of its block has arrived.
const emuPrelude = `
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <stdint.h>
#include <ucontext.h>
#include <utility>

struct uint3 { unsigned x, y, z; };
struct dim3 { unsigned x, y, z; };
struct float2 { float x, y; };
struct double2 { double x, y; };
inline float2 make_float2(float x, float y) { float2 r; r.x = x; r.y = y; return r; }
inline double2 make_double2(double x, double y) { double2 r; r.x = x; r.y = y; return r; }
inline float __int_as_float(int i) { float f; memcpy(&f, &i, 4); return f; }
inline int __float_as_int(float f) { int i; memcpy(&i, &f, 4); return i; }

namespace emu {
uint3 tid, bid;
dim3 bdim, gdim;

#if defined(__x86_64__)
// Switching fibers with swapcontext costs two signal-mask system calls;
// on x86-64 a switch only needs the callee-saved registers and the stack.
extern "C" void emu_switch(void **save_sp, void *new_sp);
asm(".text\n"
    ".globl emu_switch\n"
    ".type emu_switch,@function\n"
    "emu_switch:\n"
    "  pushq %rbp\n  pushq %rbx\n  pushq %r12\n  pushq %r13\n  pushq %r14\n  pushq %r15\n"
    "  movq %rsp, (%rdi)\n"
    "  movq %rsi, %rsp\n"
    "  popq %r15\n  popq %r14\n  popq %r13\n  popq %r12\n  popq %rbx\n  popq %rbp\n"
    "  ret\n");
#define EMU_FAST_SWITCH 1
#endif

struct Fiber {
#if EMU_FAST_SWITCH
	void *sp;
#else
	ucontext_t uc;
#endif
	char *stack;
	int state; // 0 runnable, 1 waiting at __syncthreads, 2 returned
};
const size_t kStack = 64 * 1024;
Fiber *fibers;
unsigned nfibers;
#if EMU_FAST_SWITCH
void *sched_sp;
#else
ucontext_t sched;
#endif
unsigned cur;
void (*body)(void *);
void *body_arg;
bool direct;      // threads run as plain calls: the kernel never synchronises
bool direct_sync; // a thread called __syncthreads in direct mode

void sync() {
	if (direct) {
		direct_sync = true;
		return;
	}
	fibers[cur].state = 1;
#if EMU_FAST_SWITCH
	emu_switch(&fibers[cur].sp, sched_sp);
#else
	swapcontext(&fibers[cur].uc, &sched);
#endif
}

#if EMU_FAST_SWITCH
void entry() {
	body(body_arg);
	fibers[cur].state = 2;
	emu_switch(&fibers[cur].sp, sched_sp); // never resumed
	abort();
}

void start_fiber(Fiber &f) {
	// The stack as emu_switch expects to find it: six saved registers, then
	// entry as the return address, placed so that entry starts with the
	// stack aligned as after a call.
	uintptr_t top = ((uintptr_t)(f.stack + kStack)) & ~(uintptr_t)15;
	void **sp = (void **)(top - 16);
	sp[1] = 0;
	sp[0] = (void *)entry;
	sp -= 6;
	for (int i = 0; i < 6; i++) sp[i] = 0;
	f.sp = sp;
	f.state = 0;
}

void resume(Fiber &f) { emu_switch(&sched_sp, f.sp); }
#else
void entry() {
	body(body_arg);
	fibers[cur].state = 2;
}

void start_fiber(Fiber &f) {
	getcontext(&f.uc);
	f.uc.uc_stack.ss_sp = f.stack;
	f.uc.uc_stack.ss_size = kStack;
	f.uc.uc_link = &sched;
	makecontext(&f.uc, entry, 0);
	f.state = 0;
}

void resume(Fiber &f) { swapcontext(&sched, &f.uc); }
#endif

bool grow(unsigned n) {
	if (n <= nfibers) return true;
	Fiber *f = (Fiber *)realloc(fibers, n * sizeof(Fiber));
	if (!f) return false;
	fibers = f;
	for (unsigned i = nfibers; i < n; i++) {
		fibers[i].stack = (char *)malloc(kStack);
		if (!fibers[i].stack) return false;
		nfibers = i + 1;
	}
	return true;
}

int run(dim3 g, dim3 b, int order, void (*fn)(void *), void *arg, char *err, int errlen) {
	unsigned long long nt = (unsigned long long)b.x * b.y * b.z;
	if (nt == 0 || nt > 1024 || b.z > 64) {
		snprintf(err, errlen, "invalid block %ux%ux%u", b.x, b.y, b.z);
		return -1;
	}
	if (g.x == 0 || g.y == 0 || g.z == 0 || g.x > 2147483647u || g.y > 65535 || g.z > 65535) {
		snprintf(err, errlen, "invalid grid %ux%ux%u", g.x, g.y, g.z);
		return -1;
	}
	if (!grow((unsigned)nt)) {
		snprintf(err, errlen, "out of memory for %llu fibers", nt);
		return -1;
	}
	gdim = g;
	bdim = b;
	body = fn;
	body_arg = arg;
	direct = false;
	direct_sync = false;
	// Block 0 runs as fibers. If none of its threads synchronised, the
	// kernel is taken not to, and the remaining blocks run each thread as a
	// plain call, far cheaper than a context switch (a thread that then
	// does call __syncthreads is reported).
	bool synced = false;
	for (unsigned z = 0; z < g.z; z++)
	for (unsigned y = 0; y < g.y; y++)
	for (unsigned x = 0; x < g.x; x++) {
		bid.x = x; bid.y = y; bid.z = z;
		if (direct) {
			for (unsigned i = 0; i < nt; i++) {
				unsigned t = order ? (unsigned)nt - 1 - i : i;
				tid.x = t % b.x;
				tid.y = (t / b.x) % b.y;
				tid.z = t / (b.x * b.y);
				body(body_arg);
				if (direct_sync) {
					snprintf(err, errlen, "block (%u,%u,%u) thread %u called __syncthreads, which no thread of block 0 did",
					         x, y, z, t);
					return -1;
				}
			}
			continue;
		}
		for (unsigned t = 0; t < nt; t++) start_fiber(fibers[t]);
		for (;;) {
			for (unsigned i = 0; i < nt; i++) {
				unsigned t = order ? (unsigned)nt - 1 - i : i;
				if (fibers[t].state != 0) continue;
				cur = t;
				tid.x = t % b.x;
				tid.y = (t / b.x) % b.y;
				tid.z = t / (b.x * b.y);
				resume(fibers[t]);
			}
			unsigned done = 0;
			for (unsigned t = 0; t < nt; t++) done += fibers[t].state == 2;
			if (done == nt) break;
			synced = true;
			if (done > 0) {
				snprintf(err, errlen, "block (%u,%u,%u): %u of %llu threads returned while the others wait in __syncthreads",
				         x, y, z, done, nt);
				return -1;
			}
			for (unsigned t = 0; t < nt; t++) fibers[t].state = 0;
		}
		if (!synced) direct = true;
	}
	direct = false;
	return 0;
}

template <class... A> struct Call {
	void (*k)(A...);
	void **args;
	template <size_t... I> void invoke(std::index_sequence<I...>) { k(*static_cast<A *>(args[I])...); }
	static void go(void *p) {
		Call *c = static_cast<Call *>(p);
		c->invoke(std::index_sequence_for<A...>{});
	}
};

template <class... A>
int launch(void (*k)(A...), unsigned gx, unsigned gy, unsigned gz, unsigned bx, unsigned by, unsigned bz, int order,
           void **args, char *err, int errlen) {
	Call<A...> c{k, args};
	dim3 g = {gx, gy, gz}, b = {bx, by, bz};
	return run(g, b, order, &Call<A...>::go, &c, err, errlen);
}

template <class T> struct Sig { static const char c = '?'; };
template <class T> struct Sig<T *> { static const char c = 'p'; };
template <> struct Sig<int> { static const char c = 'i'; };
template <> struct Sig<long long> { static const char c = 'l'; };
template <> struct Sig<float> { static const char c = 'f'; };
template <> struct Sig<double> { static const char c = 'd'; };

template <class... A> const char *sig(void (*)(A...)) {
	static const char s[] = {Sig<A>::c..., 0};
	return s;
}
} // namespace emu

#define threadIdx (::emu::tid)
#define blockIdx (::emu::bid)
#define blockDim (::emu::bdim)
#define gridDim (::emu::gdim)
#define __global__
#define __device__
#define __forceinline__ inline
#define __shared__ static
#define __syncthreads() ::emu::sync()
#line 1 "kernel.cu"
`

// emuExport is appended once per kernel (%[1]s is its name).
const emuExport = `
extern "C" int emu_launch_%[1]s(unsigned gx, unsigned gy, unsigned gz, unsigned bx, unsigned by, unsigned bz, int order,
                              void **a, char *err, int errlen) {
	return ::emu::launch(%[1]s, gx, gy, gz, bx, by, bz, order, a, err, errlen);
}
extern "C" const char *emu_sig_%[1]s() { return ::emu::sig(%[1]s); }
`
