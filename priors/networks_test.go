package priors

import (
	"slices"
	"testing"

	"github.com/kspaced/kspaced/configs"
)

func TestNetworksMatchConfigs(t *testing.T) {
	if !slices.Equal(Networks, configs.Networks) {
		t.Fatalf("priors.Networks %v, configs.Networks %v", Networks, configs.Networks)
	}
	for _, n := range Networks {
		if _, err := Network(n, 64, 48); err != nil {
			t.Errorf("%s: %v", n, err)
		}
	}
	if _, err := Network("huge", 64, 64); err == nil {
		t.Error("unknown network accepted")
	}
}
