package priors

import (
	"io"
	"sort"
)

// Tensor is one float32 tensor of a safetensors file.
type Tensor struct {
	Shape []int
	Data  []float32
}

// WriteTensors writes float32 tensors (in name order) and string metadata
// as a safetensors file, atomically, as checkpoints are written. Retraining
// keeps its E-step samples this way.
func WriteTensors(path string, tensors map[string]Tensor, meta map[string]string) error {
	names := make([]string, 0, len(tensors))
	for n := range tensors {
		names = append(names, n)
	}
	sort.Strings(names)
	ts := make([]ckptTensor, len(names))
	for i, n := range names {
		ts[i] = ckptTensor{name: n, shape: tensors[n].Shape, data: tensors[n].Data}
	}
	return writeFileAtomic(path, func(w io.Writer) error { return writeSafetensors(w, ts, meta) })
}

// ReadTensors reads a safetensors file of float32 tensors with the checks
// checkpoints get.
func ReadTensors(path string) (map[string]Tensor, map[string]string, error) {
	ts, md, err := readSafetensorsFile(path)
	if err != nil {
		return nil, nil, err
	}
	out := make(map[string]Tensor, len(ts))
	for n, t := range ts {
		out[n] = Tensor{Shape: t.shape, Data: t.data}
	}
	return out, md, nil
}
