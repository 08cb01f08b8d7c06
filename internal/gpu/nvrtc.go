//go:build cuda

package gpu

/*
#include <stdlib.h>
#include "dl.h"
*/
import "C"

import (
	"fmt"
	"regexp"
	"slices"
	"strings"
	"sync"
	"unsafe"
)

// kernelDecl is one `extern "C" __global__ void` function of a source and
// its parameter signature (see argPack.pack).
type kernelDecl struct {
	Name string
	Sig  string
}

var kernelRE = regexp.MustCompile(`extern\s+"C"\s+__global__\s+void\s+(\w+)\s*\(([^)]*)\)`)

// ParseKernels lists the kernels of a CUDA C source with their parameter
// signatures. Parameters must be pointers or int, long long, float or
// double (const and __restrict__ qualifiers allowed).
func ParseKernels(src string) ([]kernelDecl, error) {
	var out []kernelDecl
	seen := map[string]bool{}
	for _, m := range kernelRE.FindAllStringSubmatch(src, -1) {
		name, params := m[1], strings.TrimSpace(m[2])
		if seen[name] {
			return nil, fmt.Errorf("kernel %s defined twice", name)
		}
		seen[name] = true
		var sig []byte
		if params != "" && params != "void" {
			for _, p := range strings.Split(params, ",") {
				k, err := paramKind(p)
				if err != nil {
					return nil, fmt.Errorf("kernel %s: %w", name, err)
				}
				sig = append(sig, k)
			}
		}
		out = append(out, kernelDecl{Name: name, Sig: string(sig)})
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("no extern \"C\" __global__ kernels in source")
	}
	return out, nil
}

func paramKind(p string) (byte, error) {
	f := strings.Fields(strings.NewReplacer("*", " * ").Replace(p))
	var words []string
	ptr := false
	for _, w := range f[:max(0, len(f)-1)] { // the last field is the name
		switch w {
		case "const", "__restrict__", "volatile":
		case "*":
			ptr = true
		default:
			words = append(words, w)
		}
	}
	if len(f) > 0 && f[len(f)-1] == "*" {
		return 0, fmt.Errorf("parameter %q has no name", strings.TrimSpace(p))
	}
	if ptr {
		return 'p', nil
	}
	switch strings.Join(words, " ") {
	case "int":
		return 'i', nil
	case "long long":
		return 'l', nil
	case "float":
		return 'f', nil
	case "double":
		return 'd', nil
	}
	return 0, fmt.Errorf("parameter %q: use a pointer, int, long long, float or double", strings.TrimSpace(p))
}

// Source is a kernel source a package compiles at run time.
type Source struct{ Name, Code string }

var (
	sourcesMu sync.Mutex
	sources   []Source
)

// RegisterSource records a package's kernel source so that tests can
// compile every source the binary carries (see TestNVRTCCompilesAll).
func RegisterSource(name, code string) {
	sourcesMu.Lock()
	defer sourcesMu.Unlock()
	sources = append(sources, Source{name, code})
}

// Sources returns the registered kernel sources.
func Sources() []Source {
	sourcesMu.Lock()
	defer sourcesMu.Unlock()
	return slices.Clone(sources)
}

// NVRTCVersion loads NVRTC (no GPU needed) and returns its version.
func NVRTCVersion() (major, minor int, err error) {
	if err := load(libNVRTC); err != nil {
		return 0, 0, err
	}
	var ma, mi C.int
	if r := C.kg_nvrtc_version(&ma, &mi); r != 0 {
		return 0, 0, nvrtcErr("nvrtcVersion", r)
	}
	return int(ma), int(mi), nil
}

// NVRTCArchs lists the SM architectures NVRTC can build SASS for (e.g. 80,
// 90), or nil when this NVRTC cannot say.
func NVRTCArchs() ([]int, error) {
	if err := load(libNVRTC); err != nil {
		return nil, err
	}
	var a [128]C.int
	n := int(C.kg_nvrtc_archs(&a[0], C.int(len(a))))
	if n < 0 {
		return nil, nil
	}
	out := make([]int, n)
	for i := range out {
		out[i] = int(a[i])
	}
	return out, nil
}

// CompileOptions are the NVRTC options every kernel source is built with:
// IEEE-exact division and square root, no fast-math approximations, so the
// kernels can match the CPU reference closely.
func CompileOptions(arch int, cubin bool) []string {
	target := fmt.Sprintf("--gpu-architecture=compute_%d", arch)
	if cubin {
		target = fmt.Sprintf("--gpu-architecture=sm_%d", arch)
	}
	return []string{target, "--std=c++14", "--prec-div=true", "--prec-sqrt=true", "--ftz=false", "--fmad=true"}
}

// NVRTCCompile compiles src for arch (e.g. 80) to PTX, or to a CUBIN when
// cubin is set, with CompileOptions. It needs NVRTC but no GPU. log holds
// NVRTC's messages, warnings included.
func NVRTCCompile(name, src string, arch int, cubin bool) (image []byte, log string, err error) {
	if err := load(libNVRTC); err != nil {
		return nil, "", err
	}
	opts := CompileOptions(arch, cubin)
	copts := make([]*C.char, len(opts))
	for i, o := range opts {
		copts[i] = C.CString(o)
	}
	defer func() {
		for _, p := range copts {
			C.free(unsafe.Pointer(p))
		}
	}()
	csrc, cname := C.CString(src), C.CString(name+".cu")
	defer C.free(unsafe.Pointer(csrc))
	defer C.free(unsafe.Pointer(cname))
	var out, clog *C.char
	var n C.size_t
	cb := C.int(0)
	if cubin {
		cb = 1
	}
	r := C.kg_nvrtc_compile(csrc, cname, &copts[0], C.int(len(opts)), cb, &out, &n, &clog)
	if clog != nil {
		log = strings.TrimRight(C.GoString(clog), "\x00\n ")
		C.free(unsafe.Pointer(clog))
	}
	if out != nil {
		image = C.GoBytes(unsafe.Pointer(out), C.int(n))
		C.free(unsafe.Pointer(out))
	}
	if r != 0 {
		err = nvrtcErr("nvrtcCompileProgram", r)
		if log != "" {
			err = fmt.Errorf("%w:\n%s", err, log)
		}
		return nil, log, err
	}
	return image, log, nil
}

func nvrtcErr(op string, r C.int) error {
	return &Error{Op: op, Code: int(r), Name: C.GoString(C.kg_nvrtc_error(r))}
}

// PickArch chooses what to build for a device of compute capability cc
// (e.g. 90) given the SASS architectures NVRTC supports: the device's own
// SASS when NVRTC knows it, else PTX for the newest architecture below it,
// which the driver compiles for the device when loading. supported == nil
// (an NVRTC that cannot list them) means PTX for cc itself.
func PickArch(cc int, supported []int) (arch int, cubin bool, err error) {
	if supported == nil {
		return cc, false, nil
	}
	best := 0
	for _, a := range supported {
		if a == cc {
			return cc, true, nil
		}
		if a < cc && a > best {
			best = a
		}
	}
	if best == 0 {
		return 0, false, fmt.Errorf("NVRTC supports no architecture at or below compute %d.%d (it has %v)", cc/10, cc%10, supported)
	}
	return best, false, nil
}
