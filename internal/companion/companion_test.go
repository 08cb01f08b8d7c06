package companion

import (
	"slices"
	"testing"
)

func TestRule(t *testing.T) {
	t.Parallel()
	for _, n := range []string{"k.h5.json", "k.h5.ready", "k.hdr", "k_mask.npy", "k_truth.npy"} {
		if !Is(n) || !Skip(n) {
			t.Errorf("%s is not a companion", n)
		}
	}
	for _, n := range []string{".DS_Store", "k.h5.part", "k.npy~", ".k.h5.tmp-1"} {
		if _, ign := Ignored(n); !ign || !Skip(n) {
			t.Errorf("%s is not ignored", n)
		}
	}
	for _, n := range []string{"k.h5", "k.npy", "k.cfl", "study", "k_truth.npy.h5", "_mask.npy"} {
		if Skip(n) {
			t.Errorf("%s is skipped, want an input", n)
		}
	}
	opt, req := Of("k.cfl")
	if req != "k.hdr" || !slices.Contains(opt, "k_mask.npy") || !slices.Contains(opt, "k.cfl.json") {
		t.Errorf("Of(k.cfl) = %v, %q", opt, req)
	}
	opt, _ = Of("k.h5")
	if !slices.Contains(opt, "k_truth.npy") {
		t.Errorf("Of(k.h5) = %v: the truth file does not travel with it", opt)
	}
	for comp, entry := range map[string]string{"k_truth.npy": "k.h5", "k_mask.npy": "k.npy", "k.hdr": "k.cfl", "k.h5.json": "k.h5", "study.ready": "study"} {
		if !slices.Contains(Owners(comp), entry) {
			t.Errorf("Owners(%s) = %v, want %s among them", comp, Owners(comp), entry)
		}
		o, r := Of(entry)
		if !slices.Contains(append(o, r), comp) {
			t.Errorf("Of(%s) = %v %q lacks %s", entry, o, r, comp)
		}
	}
}
