package main

import (
	"bytes"
	"encoding/json"
	"math/rand/v2"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/kspaced/kspaced/mri"
	"github.com/kspaced/kspaced/mri/kspaceio"
	"github.com/kspaced/kspaced/mri/simulate"
	"github.com/kspaced/kspaced/pipeline"
	"github.com/kspaced/kspaced/qc"
)

// kspaced qc measures a k-space input (--json) and prints an output
// folder's report; a folder without QC is an error.
func TestQCCommand(t *testing.T) {
	dir := t.TempDir()
	const n, coils = 64, 4
	img := make([]complex64, n*n)
	for i, v := range simulate.SheppLogan(n) {
		img[i] = complex(v, 0)
	}
	mask, err := mri.RandomMask(n, n, 0.16, 3, 2)
	if err != nil {
		t.Fatal(err)
	}
	sc, err := simulate.KSpace(img, simulate.CoilMaps(coils, n, n), coils, n, n, mask, 0.01, rand.New(rand.NewPCG(1, 2)))
	if err != nil {
		t.Fatal(err)
	}
	in := filepath.Join(dir, "ph.npy")
	if err := kspaceio.WriteNPYComplex64(in, []int{coils, n, n}, sc.KSpace); err != nil {
		t.Fatal(err)
	}
	if err := kspaceio.WriteNPYFloat32(filepath.Join(dir, "ph_mask.npy"), []int{n, n}, mask); err != nil {
		t.Fatal(err)
	}
	cli := func(args ...string) (string, int) {
		root := newRootCmd()
		var out, errb bytes.Buffer
		root.SetOut(&out)
		root.SetErr(&errb)
		code := execute(root, append([]string{"qc"}, args...), &errb)
		return out.String() + errb.String(), code
	}
	out, code := cli("--json", in)
	if code != 0 {
		t.Fatalf("exit %d: %s", code, out)
	}
	var series []pipeline.QCSeries
	if err := json.Unmarshal([]byte(out), &series); err != nil {
		t.Fatalf("%v: %s", err, out)
	}
	if len(series) != 1 || series[0].Input != "ph.npy" || series[0].PerSlice[0].DataConsistency == nil || !(series[0].PerSlice[0].DataConsistency.Ratio > 0) {
		t.Fatalf("series %+v", series)
	}

	// An output folder: its report's QC, in words.
	outDir := filepath.Join(dir, "out")
	if err := os.Mkdir(outDir, 0o755); err != nil {
		t.Fatal(err)
	}
	rep := &pipeline.Report{QC: &pipeline.QCReport{Status: "check", Series: []*pipeline.QCSeries{&series[0]}}}
	series[0].PerSlice[0].Flags = append(series[0].PerSlice[0].Flags, qc.Flag{Code: "motion", Reason: "motion suspected"})
	series[0].Flagged = 1
	if err := rep.Write(outDir); err != nil {
		t.Fatal(err)
	}
	out, code = cli(outDir)
	if code != 0 || !strings.Contains(out, "ph.npy: CHECK (1 of 1 slices flagged)") || !regexp.MustCompile(`FLAGS [a-z_, ]*motion`).MatchString(out) {
		t.Fatalf("exit %d:\n%s", code, out)
	}
	if err := (&pipeline.Report{}).Write(outDir); err != nil {
		t.Fatal(err)
	}
	if out, code = cli(outDir); code == 0 || !strings.Contains(out, "holds no QC") {
		t.Fatalf("report without QC: exit %d:\n%s", code, out)
	}
}
