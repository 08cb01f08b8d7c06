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
	read := func() *qc.Calibration {
		raw, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		c, err := qc.ParseCalibration(raw)
		if err != nil {
			t.Fatal(err)
		}
		return c
	}
	sp := &qc.Spread{PixelMM: 1.6, Scale: 1.1, Scans: 9, Q1: 1, Q3: 1.2, Source: "test"}
	if err := writeSpread(path, sp); err != nil {
		t.Fatal(err)
	}
	if c := read(); c.Typicality == nil || len(c.Spread) != 1 || c.Spread[0] != *sp {
		t.Fatalf("after writeSpread: typicality %v, spread %+v", c.Typicality, c.Spread)
	}
	// Another pixel size is added; one within 15 % replaces its entry.
	fine := qc.Spread{PixelMM: 0.85, Scale: 1.0, Scans: 12, Source: "256"}
	again := qc.Spread{PixelMM: 1.7, Scale: 1.25, Scans: 16, Source: "again"}
	for _, s := range []qc.Spread{fine, again} {
		if err := writeSpread(path, &s); err != nil {
			t.Fatal(err)
		}
	}
	if c := read(); len(c.Spread) != 2 || c.Spread[0] != again || c.Spread[1] != fine || c.Typicality == nil {
		t.Fatalf("after three writes: %+v", c.Spread)
	}
	fresh := filepath.Join(dir, "new.qc.json")
	if err := writeSpread(fresh, sp); err != nil {
		t.Fatal(err)
	}
	if c, err := qc.LoadSidecar(filepath.Join(dir, "new")); err != nil || c == nil || len(c.Spread) != 1 || c.Typicality != nil {
		t.Fatalf("new sidecar: %+v, %v", c, err)
	}
}
