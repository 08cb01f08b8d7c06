package main

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/kspaced/kspaced/priors/builtin"
	"github.com/kspaced/kspaced/qc"
)

// writeSpread adds the spread part to a sidecar and keeps what it held (the
// built-in prior's typicality here); a missing sidecar gets only the spread.
func TestWriteSpreadKeepsCalibration(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "p.safetensors.qc.json")
	if err := os.WriteFile(path, builtin.QCCalibration(), 0o644); err != nil {
		t.Fatal(err)
	}
	sp := &qc.Spread{Scale: 1.1, Scans: 9, Q1: 1, Q3: 1.2, Source: "test"}
	if err := writeSpread(path, sp); err != nil {
		t.Fatal(err)
	}
	raw, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	c, err := qc.ParseCalibration(raw)
	if err != nil {
		t.Fatal(err)
	}
	if c.Typicality == nil || c.Spread == nil || *c.Spread != *sp {
		t.Fatalf("after writeSpread: typicality %v, spread %+v", c.Typicality, c.Spread)
	}
	fresh := filepath.Join(dir, "new.qc.json")
	if err := writeSpread(fresh, sp); err != nil {
		t.Fatal(err)
	}
	if c, err := qc.LoadSidecar(filepath.Join(dir, "new")); err != nil || c == nil || c.Spread == nil || c.Typicality != nil {
		t.Fatalf("new sidecar: %+v, %v", c, err)
	}
}
