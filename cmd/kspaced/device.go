package main

import (
	"sync"

	"github.com/kspaced/kspaced/configs"
	"github.com/kspaced/kspaced/mri"
	"github.com/kspaced/kspaced/pipeline"
)

// Release frees an operator from Operator (pipeline.Device).
func (d *device) Release(op mri.Operator) error { return closeOperator(op) }

var _ pipeline.Device = (*device)(nil)

// devices opens each named device once, when a job first needs it, and
// keeps it for the life of the process (the daemon may switch recon.device
// on reload).
type devices struct {
	mu     sync.Mutex
	opened map[string]*device
}

// forJob returns the device a job with cfg runs on: nil for the CPU or for
// classical methods, which never use an accelerator.
func (ds *devices) forJob(cfg *configs.Config) (pipeline.Device, error) {
	m := cfg.Recon.Method
	if cfg.Recon.Device == "cpu" || (m != "mmps" && m != "dps") {
		return nil, nil
	}
	ds.mu.Lock()
	defer ds.mu.Unlock()
	if d, ok := ds.opened[cfg.Recon.Device]; ok {
		return d, nil
	}
	d, err := openDevice(cfg.Recon.Device)
	if err != nil {
		return nil, err
	}
	if ds.opened == nil {
		ds.opened = map[string]*device{}
	}
	ds.opened[cfg.Recon.Device] = d
	return d, nil
}

// close releases every opened device.
func (ds *devices) close() {
	ds.mu.Lock()
	defer ds.mu.Unlock()
	for _, d := range ds.opened {
		_ = d.Close()
	}
	ds.opened = nil
}
