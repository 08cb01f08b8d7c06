// Package pipeline runs one reconstruction job end to end: read the k-space
// (and the DICOM study it belongs to), build each slice's operator, reconstruct
// with the configured method, and write the outputs. The CLI's `recon` and the
// daemon both call Run.
package pipeline

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/kspaced/kspaced/configs"
	"github.com/kspaced/kspaced/device"
	"github.com/kspaced/kspaced/dicomio"
	"github.com/kspaced/kspaced/internal/safefile"
	"github.com/kspaced/kspaced/mri"
	"github.com/kspaced/kspaced/mri/kspaceio"
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
	// Device runs the sampling methods' network and operator; nil is the
	// process's CPU device (device.CPU).
	Device Device
	// Reader parses the job's untrusted files; nil parses them in this
	// process. The daemon sets one that parses in a child process.
	Reader Reader
}

// Reader reads a job's input files.
type Reader interface {
	// KSpace reads one k-space file (kspaceio.Read).
	KSpace(ctx context.Context, path string) (*kspaceio.Volume, error)
	// Study reads DICOM files and folders (dicomio.ReadStudies); the error
	// says the reader itself failed, FileErrors name unusable files.
	Study(ctx context.Context, files []string) ([]*dicomio.StudyData, []dicomio.FileError, error)
}

// inProcess is the Reader of jobs that set none.
type inProcess struct{}

func (inProcess) KSpace(_ context.Context, path string) (*kspaceio.Volume, error) {
	return kspaceio.Read(path)
}

func (inProcess) Study(_ context.Context, files []string) ([]*dicomio.StudyData, []dicomio.FileError, error) {
	sd, fe := dicomio.ReadStudies(files...)
	return sd, fe, nil
}

// Device is where the sampling methods run (*device.Device; tests fake it).
type Device interface {
	Name() string
	// Acquire waits until the device may run this job; release frees it.
	Acquire(ctx context.Context) (release func(), err error)
	// Prior returns the checkpoint at path loaded on the device, for this
	// job until release.
	Prior(path string) (d priors.Denoiser, info *priors.PriorInfo, release func(), err error)
	// Operator returns the SENSE operator of one slice on the device.
	Operator(maps []complex64, coils, rows, cols int, mask []float32) (mri.Operator, error)
	// Release frees an operator from Operator.
	Release(op mri.Operator) error
	// Err reports a failure the device met while running (out of memory, a
	// kernel fault): checked after each slice.
	Err() error
}

var _ Device = (*device.Device)(nil)

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
	// SpreadRatio is, per slice, the ratio recon.sampler.spread_check
	// measured (posterior.CheckSpread; null where the noise alone explains
	// the held-out lines, or the mask has nothing to hold out).
	SpreadRatio []*float64 `json:"spread_ratio,omitempty"`
	// StdScale is, per slice of a sampling method, the factor its std was
	// multiplied by: the spread check's ratio, recon.sampler.std_scale or
	// the prior's spread calibration (1: none).
	StdScale []float64 `json:"std_scale,omitempty"`
	// PixelMM is, per sampled slice, the in-plane pixel size the prior's
	// calibration was read at (0: the file gives no field of view).
	PixelMM []float64 `json:"pixel_mm,omitempty"`
	Cost    *Cost     `json:"sampling_cost,omitempty"`
	// QC says which slices should not be trusted as they are, and why.
	QC       *QCReport `json:"qc,omitempty"`
	Warnings []string  `json:"warnings"`
	Outputs  []string  `json:"outputs"`
}

// ReportFile is the name of the report in a job's output folder.
const ReportFile = "report.json"

// Write writes the report as dir/report.json: indented JSON, one newline.
func (r *Report) Write(dir string) error {
	raw, err := json.MarshalIndent(r, "", "  ")
	if err != nil {
		return err
	}
	path := filepath.Join(dir, ReportFile)
	if err := safefile.WriteFile(path, append(raw, '\n'), 0o644); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	return nil
}

// ReadReport reads dir/report.json.
func ReadReport(dir string) (*Report, error) {
	path := filepath.Join(dir, ReportFile)
	raw, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	var r Report
	if err := json.Unmarshal(raw, &r); err != nil {
		return nil, fmt.Errorf("read %s: %w", path, err)
	}
	return &r, nil
}

// Progress receives (done, total) units of work of the file being
// reconstructed: slices for the classical methods, sampler steps of all
// slices for mmps and dps. It may be nil.
type Progress func(done, total int)

// Cost counts the network work of the sampling methods, per posterior sample.
type Cost struct {
	DenoiserEvalsPerSample int `json:"denoiser_evaluations_per_sample"`
	VJPsPerSample          int `json:"vjps_per_sample"`
	// Covariance is MMPS's covariance as used (recon.sampler.covariance
	// auto resolved for the prior).
	Covariance string `json:"covariance,omitempty"`
	// StepVariance is the sampler's step variance
	// (recon.sampler.step_variance).
	StepVariance string `json:"step_variance,omitempty"`
	// Antithetic: the samples were drawn in antithetic pairs
	// (recon.sampler.antithetic).
	Antithetic bool `json:"antithetic,omitempty"`
}
