package isolate

import (
	"os"
	"path/filepath"
	"strings"
	"time"
)

// faultEnv names simulated parser failures for tests: "KIND" or
// "KIND:NAME" (only for reads of a file named NAME), several separated by
// commas, KIND one of segv, hang, spin, hog. Only test binaries and binaries built with the
// kspaced_readerfaults tag install envFault; kspaced itself ignores it.
const faultEnv = "KSPACED_TEST_READER_FAULT"

// passEnv lists variables the parent hands on to children beside its
// fixed minimal environment (faults_tag.go adds faultEnv).
var passEnv []string

var hogged [][]byte

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
		// A fault, as in C code: through a nil pointer, past Go's checks.
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
