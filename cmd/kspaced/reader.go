package main

import (
	"time"

	"github.com/kspaced/kspaced/configs"
	"github.com/kspaced/kspaced/internal/isolate"
)

// reader is the child-process reader of untrusted files with the limits of
// cfg's daemon.reader keys; observe (may be nil) hears how each child ended.
func reader(cfg *configs.Config, observe func(isolate.Usage)) *isolate.Reader {
	r := cfg.Daemon.Reader
	return &isolate.Reader{
		Limits: isolate.Limits{
			Memory: r.MemoryMB << 20,
			CPU:    time.Duration(r.CPUSeconds) * time.Second,
			Wall:   time.Duration(r.WallSeconds) * time.Second,
			Result: r.MaxOutputMB << 20,
		},
		Observe: observe,
	}
}
