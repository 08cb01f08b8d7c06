// Package device is where the sampling methods run: it opens the CPU or
// the CUDA GPU by name (Open never returns a nil Device), keeps each prior
// it loaded per checkpoint so a daemon does not re-read and re-upload it
// for every job (Prior), builds a slice's SENSE operator there (Operator),
// and bounds how many jobs use the device at once (Acquire). Set opens
// devices on first use for a process.
package device

import (
	"context"
	"errors"
	"fmt"
	"os"
	"sync"
	"time"

	"github.com/kspaced/kspaced/mri"
	"github.com/kspaced/kspaced/priors"
	"github.com/kspaced/kspaced/priors/builtin"
	"github.com/kspaced/kspaced/priors/nn"
)

// Names lists the devices Open knows.
var Names = []string{"cpu", "cuda"}

// maxCachedPriors bounds the checkpoints a device keeps loaded: the
// configured prior and the one before a reload.
const maxCachedPriors = 2

// Device is the CPU or a GPU with its network backend. It is safe for
// concurrent use.
type Device struct {
	name, info string
	backend    nn.Backend
	hw         *hardware     // nil on the CPU
	slots      chan struct{} // jobs allowed at once; nil: no limit

	mu     sync.Mutex
	priors []*cachedPrior // most recently used last
}

// Open opens the named device: "cpu", or "cuda" (needs the CUDA build and
// a GPU; the error says what to do instead).
func Open(name string) (*Device, error) {
	switch name {
	case "cpu":
		return &Device{name: "cpu", info: "CPU", backend: nn.NewCPU()}, nil
	case "cuda":
		hw, be, info, err := openCUDA()
		if err != nil {
			return nil, fmt.Errorf("device cuda: %w", err)
		}
		// One GPU: jobs that sample on it take turns.
		return &Device{name: "cuda", info: info, backend: be, hw: hw, slots: make(chan struct{}, 1)}, nil
	}
	return nil, fmt.Errorf("device %q: want cpu or cuda", name)
}

// CPU is the process's shared CPU device, for callers that name none.
func CPU() *Device { return sharedCPU() }

var sharedCPU = sync.OnceValue(func() *Device {
	d, err := Open("cpu")
	if err != nil {
		panic(err) // opening the CPU cannot fail
	}
	return d
})

// Name is "cpu" or "cuda"; Info describes the hardware, for logs.
func (d *Device) Name() string { return d.name }
func (d *Device) Info() string { return d.info }

// Backend is the network engine on the device.
func (d *Device) Backend() nn.Backend { return d.backend }

// Close releases the device and every prior loaded on it.
func (d *Device) Close() error {
	d.mu.Lock()
	d.priors = nil
	d.mu.Unlock()
	if d.hw == nil {
		return nil
	}
	return d.hw.close()
}

// Err reports a failure the backend met while running (out of device
// memory, a kernel fault); check it after each reconstruction.
func (d *Device) Err() error {
	if d.hw == nil {
		return nil
	}
	return d.hw.err()
}

// Acquire waits for the device to be free for one job (the GPU runs one at
// a time; the CPU does not limit) and returns the func that frees it.
func (d *Device) Acquire(ctx context.Context) (release func(), err error) {
	if d.slots == nil {
		return func() {}, nil
	}
	select {
	case d.slots <- struct{}{}:
		return func() { <-d.slots }, nil
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

// Operator returns the SENSE operator of one slice on the device: mri.SENSE
// on the CPU, mri.DeviceSENSE (maps and FFTs on the GPU) with CUDA. Free it
// with Release.
func (d *Device) Operator(maps []complex64, coils, rows, cols int, mask []float32) (mri.Operator, error) {
	if d.hw == nil {
		if err := mri.CheckSENSE(maps, coils, rows, cols, mask); err != nil {
			return nil, err
		}
		return mri.NewSENSE(maps, coils, rows, cols, mask), nil
	}
	return d.hw.operator(maps, coils, rows, cols, mask)
}

// Release frees an operator from Operator.
func (d *Device) Release(op mri.Operator) error {
	if c, ok := op.(interface{ Close() error }); ok {
		return c.Close()
	}
	return nil
}

// priorKey names one version of a checkpoint file.
type priorKey struct {
	path  string
	size  int64
	mtime time.Time
}

// cachedPrior is a checkpoint loaded on the device: free holds the copies
// no job is using (a Denoiser is not safe for concurrent use).
type cachedPrior struct {
	key  priorKey
	info *priors.PriorInfo
	free []priors.Denoiser
	seed priors.Denoiser // the copy loaded from the file, cloned for more
}

// Prior returns the prior stored at path (empty: the built-in default prior,
// package priors/builtin) on the device, for one job's use until it calls
// release. The checkpoint is read and moved to the device
// once per version of the file (its size and modification time); jobs that
// overlap get copies of the loaded one. A U-Net runs on the device; a
// Gaussian prior always runs on the CPU.
func (d *Device) Prior(path string) (den priors.Denoiser, info *priors.PriorInfo, release func(), err error) {
	key := priorKey{size: int64(len(builtin.Checkpoint()))} // path "": the built-in prior
	if path != "" {
		st, err := os.Stat(path)
		if err != nil {
			return nil, nil, nil, fmt.Errorf("load prior: %w", err)
		}
		key = priorKey{path: path, size: st.Size(), mtime: st.ModTime()}
	}
	d.mu.Lock()
	c := d.lookup(key)
	if c != nil && len(c.free) > 0 {
		den = c.free[len(c.free)-1]
		c.free = c.free[:len(c.free)-1]
	} else if c != nil {
		den, err = clonePrior(c.seed)
	}
	d.mu.Unlock()
	if err != nil {
		return nil, nil, nil, err
	}
	if c == nil {
		den, info, err = d.load(path)
		if err != nil {
			return nil, nil, nil, err
		}
		d.mu.Lock()
		if c = d.lookup(key); c == nil {
			c = &cachedPrior{key: key, info: info, seed: den}
			d.priors = append(d.priors, c)
			if len(d.priors) > maxCachedPriors {
				d.priors = d.priors[len(d.priors)-maxCachedPriors:]
			}
		}
		d.mu.Unlock()
	}
	release = func() {
		d.mu.Lock()
		defer d.mu.Unlock()
		if d.lookup(key) == c { // still cached: keep the copy for the next job
			c.free = append(c.free, den)
		}
	}
	return den, c.info, release, nil
}

// lookup finds key among the cached priors and marks it most recently
// used; d.mu is held.
func (d *Device) lookup(key priorKey) *cachedPrior {
	for i, c := range d.priors {
		if c.key == key {
			d.priors = append(append(d.priors[:i:i], d.priors[i+1:]...), c)
			return c
		}
	}
	return nil
}

// load reads a checkpoint (path "": the built-in one) and moves a U-Net
// onto the device.
func (d *Device) load(path string) (priors.Denoiser, *priors.PriorInfo, error) {
	load := func() (priors.Denoiser, *priors.PriorInfo, error) { return priors.LoadPrior(path) }
	if path == "" {
		load = builtin.Load
	}
	den, info, err := load()
	if err != nil {
		return nil, nil, fmt.Errorf("load prior: %w", err)
	}
	if u, ok := den.(*priors.UNet); ok && d.hw != nil {
		if den, err = u.To(d.backend); err == nil {
			err = d.Err()
		}
		if err != nil {
			return nil, nil, fmt.Errorf("load prior onto %s: %w", d.name, err)
		}
	}
	return den, info, nil
}

// clonePrior copies a loaded prior for a concurrent job.
func clonePrior(d priors.Denoiser) (priors.Denoiser, error) {
	switch v := d.(type) {
	case *priors.UNet:
		return v.Clone()
	case *priors.Gaussian:
		return v.Clone(), nil
	}
	return nil, fmt.Errorf("prior of type %T cannot be copied", d)
}

// Set opens each named device once, when first asked for, and keeps it for
// the life of the process (a daemon may switch recon.device on reload).
type Set struct {
	mu     sync.Mutex
	opened map[string]*Device
}

// Get returns the named device, opening it on first use.
func (s *Set) Get(name string) (*Device, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if d, ok := s.opened[name]; ok {
		return d, nil
	}
	d, err := Open(name)
	if err != nil {
		return nil, err
	}
	if s.opened == nil {
		s.opened = map[string]*Device{}
	}
	s.opened[name] = d
	return d, nil
}

// Close releases every opened device.
func (s *Set) Close() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	var errs []error
	for _, d := range s.opened {
		errs = append(errs, d.Close())
	}
	s.opened = nil
	return errors.Join(errs...)
}
