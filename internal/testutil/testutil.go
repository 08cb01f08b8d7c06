// Package testutil finds the external reference tools (BART, dcmtk, Debian's
// Python with h5py/pydicom/scikit-image, …) that tests compare against, and
// tells whether a text quotes made-up patient data (QuotesPHI).
package testutil

import (
	"os"
	"os/exec"
	"testing"
)

// Python is Debian's interpreter, which has python3-h5py, -pydicom, -numpy
// and -skimage; a python3 earlier in PATH (pyenv) usually has none of them.
const Python = "/usr/bin/python3"

// required reports whether missing peers must fail tests rather than skip
// them; `make test` (and so CI) sets KSPACED_REQUIRE_PEERS=1.
func required() bool { return os.Getenv("KSPACED_REQUIRE_PEERS") == "1" }

// Tool returns the path of an executable, skipping the test when it is absent
// (or failing it under KSPACED_REQUIRE_PEERS=1).
func Tool(t testing.TB, name string) string {
	t.Helper()
	p, err := exec.LookPath(name)
	if err != nil {
		missing(t, "tool "+name+" not found (scripts/deps.sh installs it)")
	}
	return p
}

// PythonWith returns Debian's python3 after checking it imports modules.
func PythonWith(t testing.TB, modules ...string) string {
	t.Helper()
	for _, m := range modules {
		if err := exec.Command(Python, "-c", "import "+m).Run(); err != nil {
			missing(t, Python+" cannot import "+m+" (scripts/deps.sh installs it)")
		}
	}
	return Python
}

// File returns path if it exists, for data that comes from a Debian package.
func File(t testing.TB, path string) string {
	t.Helper()
	if _, err := os.Stat(path); err != nil {
		missing(t, path+" not found (scripts/deps.sh installs it)")
	}
	return path
}

func missing(t testing.TB, why string) {
	t.Helper()
	if required() {
		t.Fatal(why)
	}
	t.Skip(why)
}
