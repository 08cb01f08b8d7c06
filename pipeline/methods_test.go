package pipeline

import (
	"testing"

	"github.com/kspaced/kspaced/configs"
)

// Every method of configs.MethodTable runs here: the classical ones through
// classical, the sampling ones through samplePosterior, and nothing else.
func TestMethodsRun(t *testing.T) {
	for _, m := range configs.MethodTable {
		_, ok := classical[m.Name]
		if m.Sampling == ok {
			t.Errorf("%s: sampling %v, classical run function %v", m.Name, m.Sampling, ok)
		}
	}
	for name := range classical {
		if _, ok := configs.LookupMethod(name); !ok {
			t.Errorf("classical method %s is not in configs.MethodTable", name)
		}
	}
}
