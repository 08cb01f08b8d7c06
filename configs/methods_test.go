package configs

import "testing"

func TestMethodTable(t *testing.T) {
	r := Default().Recon
	for _, m := range MethodTable {
		got, ok := LookupMethod(m.Name)
		if !ok || got.Name != m.Name {
			t.Errorf("LookupMethod(%s) = %v, %v", m.Name, got, ok)
		}
		for _, p := range m.Params {
			if r.Param(p) == nil {
				t.Errorf("%s: parameter %s has no recon setting", m.Name, p)
			}
		}
		r.Method = m.Name
		if r.Sampling() != (m.Name == "mmps" || m.Name == "dps") {
			t.Errorf("%s: Sampling() = %v", m.Name, r.Sampling())
		}
		if r.Reads("covariance") != (m.Name == "mmps") || r.Reads("zeta") != (m.Name == "dps") || r.Reads("no-such-setting") {
			t.Errorf("%s: Reads covariance %v, zeta %v", m.Name, r.Reads("covariance"), r.Reads("zeta"))
		}
	}
	if _, ok := LookupMethod("langevin"); ok {
		t.Error("unknown method found")
	}
}
