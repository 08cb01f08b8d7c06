// Package configs loads kspaced's YAML configuration: defaults embedded in the
// binary, overridden by a user file decoded strictly (an unknown or mistyped
// key is an error naming the key and its line), then validated.
package configs

import (
	"bytes"
	_ "embed"
	"errors"
	"fmt"
	"io"
	"os"
	"regexp"
	"strings"
	"time"

	"gopkg.in/yaml.v3"
)

//go:embed default.yaml
var defaultYAML []byte

// DefaultYAML is the embedded default configuration, comments included.
func DefaultYAML() []byte { return bytes.Clone(defaultYAML) }

// Config is the whole configuration.
type Config struct {
	Recon    Recon    `yaml:"recon"`
	Output   Output   `yaml:"output"`
	Simulate Simulate `yaml:"simulate"`
	Daemon   Daemon   `yaml:"daemon"`
	Retrain  Retrain  `yaml:"retrain"`
	PACS     PACS     `yaml:"pacs"`
	Archive  Archive  `yaml:"archive"` // simulate archive only; validated there
}

// Recon selects and tunes the reconstruction method.
type Recon struct {
	Method     string   `yaml:"method"`
	Lambda     float64  `yaml:"lambda"`
	Iterations int      `yaml:"iterations"`
	Tolerance  float64  `yaml:"tolerance"`
	Device     string   `yaml:"device"`
	CoilMaps   CoilMaps `yaml:"coil_maps"`
	Sampler    Sampler  `yaml:"sampler"`
}

// CoilMaps configures ESPIRiT sensitivity estimation.
type CoilMaps struct {
	Method    string  `yaml:"method"`
	Calib     int     `yaml:"calib"`
	Kernel    int     `yaml:"kernel"`
	Threshold float64 `yaml:"threshold"`
	Crop      float64 `yaml:"crop"`
}

// Covariances are the values of recon.sampler.covariance: posterior's
// CovJacobian and CovDiagonal, or auto (the diagonal one when the prior is a
// network with a covariance head, else the Jacobian one).
var Covariances = []string{"auto", "jacobian", "diagonal"}

// StepVariances are the values of recon.sampler.step_variance: posterior's
// StepVarianceDDPM and StepVariancePosterior.
var StepVariances = []string{"ddpm", "posterior"}

// Default sampler steps when recon.sampler.steps is 0: the diagonal
// covariance holds its quality at 32 steps where the Jacobian one needs 64
// (docs/bench/sampling.md).
const (
	DefaultSteps         = 64
	DefaultDiagonalSteps = 32
)

// Sampler configures diffusion posterior sampling (mmps, dps).
type Sampler struct {
	Prior        string `yaml:"prior"`
	Steps        int    `yaml:"steps"`
	CGIterations int    `yaml:"cg_iterations"`
	// Steps is the sampler's number of steps; 0: DefaultDiagonalSteps with
	// the diagonal covariance, DefaultSteps otherwise.
	// Covariance is MMPS's covariance: auto, jacobian or diagonal (Covariances).
	Covariance string `yaml:"covariance"`
	// StepVariance is what each DDPM step draws around its mean: ddpm or
	// posterior (StepVariances; posterior.SampleOptions).
	StepVariance string `yaml:"step_variance"`
	// Antithetic draws the samples in pairs with negated random draws
	// (posterior.SampleOptions.Antithetic).
	Antithetic bool `yaml:"antithetic"`
	// JacobianSigma [lo, hi]: with the diagonal covariance, the steps whose
	// σ lies in it use the Jacobian covariance (posterior.SampleOptions);
	// empty: none.
	JacobianSigma []float64 `yaml:"jacobian_sigma"`
	// Precondition preconditions the Jacobian steps' CG by the diagonal
	// covariance's system (posterior.SampleOptions.Precondition).
	Precondition bool    `yaml:"precondition"`
	Samples      int     `yaml:"samples"`
	Zeta         float64 `yaml:"zeta"`
	Seed         uint64  `yaml:"seed"`
	// BatchPixels bounds the slices of a volume sampled as one denoiser
	// batch: samples × rows × cols over the batch (one slice always goes).
	BatchPixels int `yaml:"batch_pixels"`
	// SpreadCheck holds out a fifth of each slice's measured lines outside
	// the centre, samples again from the rest, and scales the slice's std
	// by how far the held-out values stray from the samples' spread
	// (posterior.CheckSpread) instead of StdScale: twice the cost, and one
	// slice's ratio is noisy (docs/bench/sampling.md); for measuring.
	SpreadCheck bool `yaml:"spread_check"`
	// StdScale multiplies the posterior std; 0: the prior's own spread
	// calibration (its QC sidecar's spread.scale; 1 when it has none).
	StdScale float64 `yaml:"std_scale"`
}

// Output selects what a reconstruction writes.
type Output struct {
	NPY      bool   `yaml:"npy"`
	DICOM    bool   `yaml:"dicom"`
	Previews bool   `yaml:"previews"`
	UIDRoot  string `yaml:"uid_root"`
}

// Simulate configures `kspaced simulate`.
type Simulate struct {
	Rows           int     `yaml:"rows"`
	Cols           int     `yaml:"cols"`
	Coils          int     `yaml:"coils"`
	Mask           string  `yaml:"mask"`
	Acceleration   float64 `yaml:"acceleration"`
	CenterFraction float64 `yaml:"center_fraction"`
	Noise          float64 `yaml:"noise"`
	Seed           uint64  `yaml:"seed"`
}

// Daemon configures `kspaced serve`.
type Daemon struct {
	Spool          string        `yaml:"spool"`
	Workers        int           `yaml:"workers"`
	QuietPeriod    time.Duration `yaml:"quiet_period"`
	RescanInterval time.Duration `yaml:"rescan_interval"`
	JobTimeout     time.Duration `yaml:"job_timeout"`
	// StallTimeout stops an attempt that reports no progress for this long
	// (0: never); it catches a hung job long before job_timeout.
	StallTimeout time.Duration `yaml:"stall_timeout"`
	GracePeriod  time.Duration `yaml:"grace_period"`
	Retries      int           `yaml:"retries"`
	RetryBackoff time.Duration `yaml:"retry_backoff"`
	MinFreeMB    int64         `yaml:"min_free_mb"`
	HTTPAddr     string        `yaml:"http_addr"`
	LogFormat    string        `yaml:"log_format"`
	// PriorDirs are the folders a job's options file may take
	// recon.sampler.prior from; the service's own prior is always allowed.
	PriorDirs []string `yaml:"prior_dirs"`
	Reader    Reader   `yaml:"reader"`
}

// Reader bounds the child process that parses each untrusted file
// (internal/isolate) for `kspaced serve` and `kspaced batch`.
type Reader struct {
	MemoryMB    int64 `yaml:"memory_mb"`
	CPUSeconds  int64 `yaml:"cpu_seconds"`
	WallSeconds int64 `yaml:"wall_seconds"`
	MaxOutputMB int64 `yaml:"max_output_mb"`
}

// Default returns the embedded defaults.
func Default() *Config {
	c, err := decode(&Config{}, defaultYAML, "embedded default.yaml")
	if err != nil {
		panic(err) // the embedded file is tested; this cannot happen in a release
	}
	return c
}

// Load returns the defaults overridden by the YAML file at path ("" for the
// defaults alone), validated.
func Load(path string) (*Config, error) {
	c := Default()
	if path != "" {
		raw, err := os.ReadFile(path)
		if err != nil {
			return nil, fmt.Errorf("config: %w", err)
		}
		if c, err = decode(c, raw, path); err != nil {
			return nil, err
		}
	}
	if err := c.Validate(); err != nil {
		return nil, fmt.Errorf("config %s: %w", nameOr(path), err)
	}
	return c, nil
}

// Parse is Load for YAML already in memory; name labels errors.
func Parse(raw []byte, name string) (*Config, error) {
	c, err := decode(Default(), raw, name)
	if err != nil {
		return nil, err
	}
	if err := c.Validate(); err != nil {
		return nil, fmt.Errorf("config %s: %w", name, err)
	}
	return c, nil
}

// Overlay returns a copy of base with the keys in raw (YAML or JSON, such as a
// daemon job's sidecar) overridden, strictly decoded and validated.
func Overlay(base *Config, raw []byte, name string) (*Config, error) {
	c := *base
	if _, err := decode(&c, raw, name); err != nil {
		return nil, err
	}
	if err := c.Validate(); err != nil {
		return nil, fmt.Errorf("config %s: %w", name, err)
	}
	return &c, nil
}

func nameOr(path string) string {
	if path == "" {
		return "(defaults)"
	}
	return path
}

var unknownField = regexp.MustCompile(`line (\d+): field (\S+) not found in type configs\.(\w+)`)

var sectionOf = map[string]string{
	"Config": "top level", "Recon": "recon", "CoilMaps": "recon.coil_maps", "Sampler": "recon.sampler",
	"Output": "output", "Simulate": "simulate", "Daemon": "daemon", "Reader": "daemon.reader", "Retrain": "retrain",
	"PACS": "pacs", "Destination": "pacs.destinations", "Listen": "pacs.listen",
}

func decode(into *Config, raw []byte, name string) (*Config, error) {
	dec := yaml.NewDecoder(bytes.NewReader(raw))
	dec.KnownFields(true)
	if err := dec.Decode(into); err != nil {
		if errors.Is(err, io.EOF) {
			return into, nil // an empty file overrides nothing
		}
		var te *yaml.TypeError
		if errors.As(err, &te) {
			msgs := make([]string, len(te.Errors))
			for i, e := range te.Errors {
				if m := unknownField.FindStringSubmatch(e); m != nil {
					e = fmt.Sprintf("line %s: unknown key %q in %s", m[1], m[2], sectionOf[m[3]])
				}
				msgs[i] = e
			}
			return nil, fmt.Errorf("config %s: %s", name, strings.Join(msgs, "; "))
		}
		return nil, fmt.Errorf("config %s: %w", name, err)
	}
	return into, nil
}
