package main

import (
	"testing"

	"github.com/kspaced/kspaced/configs"
	"github.com/kspaced/kspaced/internal/isolate"
)

// default.yaml's daemon.reader and isolate's zero-value defaults agree, so
// a Reader built without the config reads as the service does.
func TestReaderLimitsFromConfig(t *testing.T) {
	want := isolate.Limits{Memory: isolate.DefaultMemory, CPU: isolate.DefaultCPU, Wall: isolate.DefaultWall, Result: isolate.DefaultResult}
	if got := reader(configs.Default(), nil).Limits; got != want {
		t.Errorf("default.yaml gives %+v, isolate's defaults are %+v", got, want)
	}
	c := configs.Default()
	c.Daemon.Reader = configs.Reader{MemoryMB: 512, CPUSeconds: 7, WallSeconds: 9, MaxOutputMB: 64}
	want = isolate.Limits{Memory: 512 << 20, CPU: 7e9, Wall: 9e9, Result: 64 << 20}
	if got := reader(c, nil).Limits; got != want {
		t.Errorf("got %+v, want %+v", got, want)
	}
}
