package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// bench compare pairs two bench quality JSON files by folder and scan, and
// says so when nothing pairs.
func TestBenchCompare(t *testing.T) {
	dir := t.TempDir()
	write := func(name, method, scores string) string {
		p := filepath.Join(dir, name)
		body := `{"cells": [{"folder": "/x/m128-8x", "method": "` + method + `", "matrix": [128, 128], "scores": [` + scores + `]}]}`
		if err := os.WriteFile(p, []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
		return p
	}
	a := write("a.json", "l1-wavelet", `{"scan": "s1", "psnr": 22, "ssim": 0.6}, {"scan": "s2", "psnr": 24, "ssim": 0.7}`)
	b := write("b.json", "mmps", `{"scan": "s1", "psnr": 23, "ssim": 0.65, "coverage": 0.8}, {"scan": "s2", "psnr": 25, "ssim": 0.75, "coverage": 0.9}`)
	code, out := runBin(t, "bench", "compare", a, b)
	if code != 0 || !strings.Contains(out, "| m128-8x | 2 | +1.00 ± 0.00 | +0.0500 ± 0.0000 | 2/2 | 0.850 ± 0.050 |") {
		t.Errorf("bench compare: exit %d:\n%s", code, out)
	}
	if code, out := runBin(t, "bench", "compare", a, b, "--b-method", "dps"); code == 0 || !strings.Contains(out, "no test folder has scans scored by l1-wavelet") {
		t.Errorf("bench compare with no dps cell: exit %d:\n%s", code, out)
	}
}
