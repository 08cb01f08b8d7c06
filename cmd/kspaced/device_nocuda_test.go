//go:build !cuda

package main

import (
	"errors"
	"testing"
)

func TestOpenDeviceDefaultBuild(t *testing.T) {
	if cudaBuild {
		t.Fatal("cudaBuild true without the cuda tag")
	}
	d, err := openDevice("cpu")
	if err != nil || d.Name != "cpu" || d.Backend == nil {
		t.Fatalf("cpu: %+v, %v", d, err)
	}
	if _, err := openDevice("cuda"); !errors.Is(err, errNoCUDABuild) {
		t.Fatalf("cuda in the default build: %v", err)
	}
	if _, err := openDevice("gpu"); err == nil {
		t.Fatal("unknown device accepted")
	}
	op, err := d.Operator(make([]complex64, 2*16), 2, 4, 4, make([]float32, 16))
	if err != nil || op.InLen() != 16 || op.OutLen() != 32 {
		t.Fatalf("operator: %v, %v", op, err)
	}
	if _, err := d.Operator(make([]complex64, 5), 2, 4, 4, make([]float32, 16)); err == nil {
		t.Fatal("bad operator shapes accepted")
	}
}
