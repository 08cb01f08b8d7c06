package nn

import (
	"strings"
	"testing"
)

func TestCompareBackendsCPU(t *testing.T) {
	split := NewCPU()
	split.goSplit = true
	for _, err := range CompareBackends(NewCPU(), split, 1e-5) {
		t.Error(err)
	}
}

// brokenCPU gets one op slightly wrong; CompareBackends must notice.
type brokenCPU struct{ *CPU }

func (b brokenCPU) Name() string { return "broken" }

func (b brokenCPU) GroupNormBackward(dx, dgamma, dbeta, dy, x, mean, rstd, gamma Buffer, n, c, hw, groups int) {
	b.CPU.GroupNormBackward(dx, dgamma, dbeta, dy, x, mean, rstd, gamma, n, c, hw, groups)
	dx.Host[3] += 0.01
}

func TestCompareBackendsCatchesErrors(t *testing.T) {
	errs := CompareBackends(NewCPU(), brokenCPU{NewCPU()}, 1e-5)
	if len(errs) != 1 || !strings.Contains(errs[0].Error(), "GroupNormBackward dx") {
		t.Fatalf("errors %v, want exactly the GroupNormBackward dx one", errs)
	}
}
