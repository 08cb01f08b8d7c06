//go:build cuda

package gpu

import "fmt"

type fftImpl interface {
	exec(data Ptr, inverse bool) error
	destroy() error
}

// FFT is a cuFFT plan for batch contiguous rows×cols complex64 images,
// transformed in place without normalisation or shifts: the forward
// transform is Σ x·e^{−2πi(…)}, the inverse the same with +, so inverse ∘
// forward multiplies by rows·cols.
type FFT struct {
	ctx               *Context
	impl              fftImpl
	Rows, Cols, Batch int
}

// NewFFT makes a plan.
func (c *Context) NewFFT(rows, cols, batch int) (*FFT, error) {
	if rows < 1 || cols < 1 || batch < 1 || rows > 1<<16 || cols > 1<<16 || int64(rows)*int64(cols)*int64(batch) > maxInt32 {
		return nil, fmt.Errorf("cuda: fft of %d images of %d×%d", batch, rows, cols)
	}
	impl, err := c.drv.newFFT(rows, cols, batch)
	if err != nil {
		return nil, err
	}
	return &FFT{ctx: c, impl: impl, Rows: rows, Cols: cols, Batch: batch}, nil
}

// Exec transforms the batch at data in place (queued).
func (f *FFT) Exec(data Ptr, inverse bool) error { return f.impl.exec(data, inverse) }

// Close destroys the plan.
func (f *FFT) Close() error { return f.impl.destroy() }
