// Package pipeline runs one reconstruction job end to end: read the k-space
// (and the DICOM study it belongs to), build each slice's operator, reconstruct
// with the configured method, and write the outputs. The CLI's `recon` and the
// daemon both call Run.
package pipeline

import (
	"errors"
	"time"

	"github.com/kspaced/kspaced/configs"
	"github.com/kspaced/kspaced/mri"
	"github.com/kspaced/kspaced/priors"
)

// ErrBadInput marks failures caused by the job's input (unreadable, wrong
// format, inconsistent): retrying cannot help. Other errors may be transient.
var ErrBadInput = errors.New("bad input")

// ErrConfig marks failures caused by the configuration a job runs with (a
// prior that cannot be loaded, a device that cannot be opened), not by its
// data: retrying cannot help, and re-exporting the data would not either.
var ErrConfig = errors.New("configuration cannot be used")

// Job is one reconstruction request.
type Job struct {
	ID string
	// Inputs are k-space files and, optionally, DICOM files of the study the
	// k-space belongs to.
	Inputs []string
	Config *configs.Config
	// Device runs the sampling methods' network and operator; nil is the CPU.
	Device Device
}

// Device places a prior network and a slice's measurement operator on an
// accelerator (the CUDA build supplies one; nil means the CPU).
type Device interface {
	// UNet returns u, loaded on the CPU, on the device.
	UNet(u *priors.UNet) (*priors.UNet, error)
	// Operator returns the SENSE operator of one slice on the device.
	Operator(maps []complex64, coils, rows, cols int, mask []float32) (mri.Operator, error)
	// Release frees an operator from Operator.
	Release(op mri.Operator) error
	// Err reports a failure the device met while running (out of memory, a
	// kernel fault): checked after each slice.
	Err() error
}

// Report describes a finished job; the daemon writes it as report.json.
type Report struct {
	Job        string             `json:"job"`
	Inputs     []string           `json:"inputs"`
	Method     string             `json:"method"`
	Parameters map[string]any     `json:"parameters"`
	Prior      string             `json:"prior,omitempty"`
	Started    time.Time          `json:"started"`
	Finished   time.Time          `json:"finished"`
	Seconds    map[string]float64 `json:"seconds"`
	Slices     int                `json:"slices"`
	// Residual is ‖y − A x‖ / ‖y‖ over the sampled k-space, per slice.
	Residual []float64 `json:"data_consistency_residual"`
	Cost     *Cost     `json:"sampling_cost,omitempty"`
	Warnings []string  `json:"warnings"`
	Outputs  []string  `json:"outputs"`
}

// Progress receives (done, total) slices of the file being reconstructed; it
// may be nil.
type Progress func(done, total int)

// Cost counts the network work of the sampling methods, per posterior sample.
type Cost struct {
	DenoiserEvalsPerSample int `json:"denoiser_evaluations_per_sample"`
	VJPsPerSample          int `json:"vjps_per_sample"`
}
