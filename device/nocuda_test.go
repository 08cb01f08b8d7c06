//go:build !cuda

package device

import (
	"errors"
	"testing"
)

func TestOpenDefaultBuild(t *testing.T) {
	if CUDABuild {
		t.Fatal("cudaBuild true without the cuda tag")
	}
	d, err := Open("cpu")
	if err != nil || d.Name() != "cpu" || d.Backend() == nil {
		t.Fatalf("cpu: %+v, %v", d, err)
	}
	if _, err := Open("cuda"); !errors.Is(err, ErrNoCUDABuild) {
		t.Fatalf("cuda in the default build: %v", err)
	}
	if _, err := Open("gpu"); err == nil {
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
