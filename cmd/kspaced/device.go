package main

import (
	"github.com/kspaced/kspaced/configs"
	"github.com/kspaced/kspaced/device"
	"github.com/kspaced/kspaced/pipeline"
)

// jobDevice is the device a job with cfg samples on. Classical methods
// need none, so they run even where the configured GPU is missing.
func jobDevice(devs *device.Set, cfg *configs.Config) (pipeline.Device, error) {
	if !cfg.Recon.Sampling() {
		return nil, nil
	}
	d, err := devs.Get(cfg.Recon.Device)
	if err != nil {
		return nil, err
	}
	return d, nil
}
