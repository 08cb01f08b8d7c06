// Package builtin holds the default prior shipped in the binary: the
// checkpoint kspaced samples with when recon.sampler.prior is empty, the
// lap records of the EM run it came from (train/default-prior) and its QC
// calibration. `make
// ship-prior` replaces both; `kspaced prior show` describes them.
package builtin

import (
	"crypto/sha256"
	_ "embed"
	"encoding/hex"
	"sync"

	"github.com/kspaced/kspaced/priors"
)

// Name is how reports, DICOM headers and errors name the built-in prior.
const Name = "built-in default prior"

//go:embed default.safetensors
var checkpoint []byte

//go:embed laps.json
var laps []byte

//go:embed default.safetensors.qc.json
var qcCalibration []byte

// Checkpoint returns the embedded checkpoint's bytes (shared: do not modify).
func Checkpoint() []byte { return checkpoint }

// Laps returns the JSON lap records of the EM run the checkpoint came from.
func Laps() []byte { return laps }

// QCCalibration returns the JSON QC calibration of the checkpoint (package
// qc's Calibration, the sidecar CKPT.qc.json of a checkpoint file).
func QCCalibration() []byte { return qcCalibration }

var sum = sync.OnceValue(func() string {
	h := sha256.Sum256(checkpoint)
	return hex.EncodeToString(h[:])
})

// SHA256 is the hex SHA-256 of the embedded checkpoint.
func SHA256() string { return sum() }

// Load decodes the embedded checkpoint.
func Load() (priors.Denoiser, *priors.PriorInfo, error) {
	d, info, err := priors.LoadPriorBytes(Name, checkpoint)
	if err != nil {
		return nil, nil, err
	}
	info.Name = Name
	return d, info, nil
}
