package isolate

import (
	"os"
	"path/filepath"
	"runtime/debug"
	"strings"
	"syscall"
	"time"
)

// faultEnv names simulated parser failures for tests: "KIND" or
// "KIND:NAME" (only for reads of a file named NAME), several separated by
// commas, KIND one of segv (a fault as in C code), nilderef, hang, spin, hog, or one of the Go runtime's
// fatal errors: stack (unbounded recursion), mapwrite (concurrent map
// writes), bigalloc (one allocation beyond the memory limit), panic. Only test binaries and binaries built with the
// kspaced_readerfaults tag install envFault; kspaced itself ignores it.
const faultEnv = "KSPACED_TEST_READER_FAULT"

// passEnv lists variables the parent hands on to children beside its
// fixed minimal environment (faults_tag.go adds faultEnv).
var passEnv []string

var (
	hogged [][]byte
	big    []byte
	depth  int
)

// recurse never returns: each frame holds a buffer the compiler cannot drop.
func recurse(n int) int {
	var pad [256]byte
	pad[n%256] = byte(n)
	depth = n
	return recurse(n+1) + int(pad[(n+1)%256])
}

// envFault misbehaves as faultEnv asks, in the child, after its limits.
func envFault(paths []string) {
	for _, f := range strings.Split(os.Getenv(faultEnv), ",") {
		kind, name, _ := strings.Cut(f, ":")
		if name == "" || (len(paths) > 0 && filepath.Base(paths[0]) == name) {
			fault(kind)
		}
	}
}

func fault(kind string) {
	switch kind {
	case "segv":
		// A fault as in C code: the runtime cannot turn it into a panic.
		_ = syscall.Kill(os.Getpid(), syscall.SIGSEGV)
		time.Sleep(time.Minute)
	case "nilderef":
		// A fault in Go code, which the runtime turns into a panic.
		var p *[1 << 20]int
		p[4096] = 1
	case "hang":
		for {
			time.Sleep(time.Hour)
		}
	case "spin":
		for i := 0; ; i++ {
			_ = i * i
		}
	case "stack":
		debug.SetMaxStack(8 << 20) // reached in milliseconds, not at the 1 GB default
		recurse(0)
	case "mapwrite":
		m := map[int]int{}
		for g := 0; g < 4; g++ {
			go func() {
				for i := 0; ; i++ {
					m[i%1024] = g
				}
			}()
		}
		for i := 0; ; i++ {
			m[i%1024] = i
		}
	case "bigalloc":
		big = make([]byte, 1<<40)
	case "panic":
		panic("a reader bug")
	case "hog":
		for {
			b := make([]byte, 64<<20)
			for i := range b {
				b[i] = 1
			}
			hogged = append(hogged, b)
		}
	}
}
