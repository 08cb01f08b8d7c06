package pipeline

import (
	"context"
	"errors"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/kspaced/kspaced/configs"
	companions "github.com/kspaced/kspaced/internal/companion"
	"github.com/kspaced/kspaced/internal/safefile"
	"github.com/kspaced/kspaced/mri"
	"github.com/kspaced/kspaced/mri/kspaceio"
)

// Run reconstructs every slice of every k-space file in job.Inputs and writes
// the outputs into outDir (which must exist). Errors caused by the input wrap
// ErrBadInput; the report lists what was written.
func Run(ctx context.Context, job Job, outDir string, progress Progress) (*Report, error) {
	cfg := job.Config
	rep := &Report{
		Job: job.ID, Method: cfg.Recon.Method, Started: time.Now().UTC(),
		Seconds: map[string]float64{}, Warnings: []string{}, Outputs: []string{},
		Parameters: parameters(cfg),
	}
	if cfg.Recon.Sampling() {
		if rep.Prior = cfg.Recon.Sampler.Prior; rep.Prior == "" {
			rep.Prior = PriorName("")
		}
	}
	kspaceFiles, others, err := Classify(job.Inputs)
	if err != nil {
		return nil, err
	}
	rep.Inputs = slices.Concat(kspaceFiles, others)
	if len(kspaceFiles) == 0 {
		names := make([]string, len(others))
		for i, o := range others {
			names[i] = filepath.Base(o)
		}
		return nil, fmt.Errorf("%w: %w: %s is not ISMRMRD or fastMRI HDF5, BART .cfl or NumPy .npy k-space", ErrBadInput, errNoKSpace, strings.Join(names, ", "))
	}
	pr, err := loadPrior(ctx, &cfg.Recon, job.Device)
	if err != nil {
		return nil, err
	}
	if pr != nil {
		defer pr.release()
	}
	env, warnings := newQC(&cfg.Recon, pr)
	defer env.release()
	rep.Warnings = append(rep.Warnings, warnings...)
	rd := job.Reader
	if rd == nil {
		rd = inProcess{}
	}
	src, warnings := readSourceStudy(ctx, rd, others)
	rep.Warnings = append(rep.Warnings, warnings...)
	bases, warnings := outputBases(kspaceFiles)
	rep.Warnings = append(rep.Warnings, warnings...)
	// One file at a time, so a job of several large volumes holds one in memory.
	var notKSpace []string
	for i, path := range kspaceFiles {
		files, err := runVolume(ctx, rd, path, rep, pr, env, src, cfg, outDir, progress, bases[i])
		if errors.Is(err, kspaceio.ErrUnknownFormat) {
			// HDF5 without k-space (Classify only sniffs): not ours, as before.
			notKSpace = append(notKSpace, filepath.Base(path))
			rep.Warnings = append(rep.Warnings, fmt.Sprintf("%s ignored: no ISMRMRD or fastMRI k-space in it", filepath.Base(path)))
			continue
		}
		if err != nil {
			return nil, err
		}
		rep.Outputs = append(rep.Outputs, files...)
	}
	if len(notKSpace) == len(kspaceFiles) {
		return nil, fmt.Errorf("%w: %w: %s is not ISMRMRD or fastMRI HDF5, BART .cfl or NumPy .npy k-space", ErrBadInput, errNoKSpace, strings.Join(notKSpace, ", "))
	}
	rep.Finished = time.Now().UTC()
	return rep, nil
}

// runVolume reads, reconstructs and writes one k-space file, accumulating
// into rep.
func runVolume(ctx context.Context, rd Reader, path string, rep *Report, pr *prior, env *qcEnv, src *sourceStudy, cfg *configs.Config, outDir string, progress Progress, outBase string) ([]string, error) {
	stop := timer(rep.Seconds, "read")
	v, err := rd.KSpace(ctx, path)
	stop()
	if err != nil {
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
		return nil, fmt.Errorf("%w: %w", ErrBadInput, err)
	}
	name := filepath.Base(path)
	if len(v.Slices) == 0 {
		return nil, fmt.Errorf("%w: %s holds no imaging data", ErrBadInput, name)
	}
	if err := checkSignal(v); err != nil {
		return nil, fmt.Errorf("%w: %s: %w", ErrBadInput, name, err)
	}
	results := make([]*sliceResult, len(v.Slices))
	// Sampling takes as many slices at once as recon.sampler.batch_pixels allows.
	batch := sliceBatch(&cfg.Recon, pr, v.Slices[0].Rows, v.Slices[0].Cols)
	for i0 := 0; i0 < len(v.Slices); {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		i1 := i0 + 1
		for i1 < len(v.Slices) && i1-i0 < batch && v.Slices[i1].Rows == v.Slices[i0].Rows && v.Slices[i1].Cols == v.Slices[i0].Cols {
			i1++
		}
		var steps func(step, total int) // sampling reports its steps: minutes per slice on a CPU
		if progress != nil && pr != nil {
			steps = func(step, total int) { progress(i0*total+step*(i1-i0), len(v.Slices)*total) }
		}
		scans := make([]*mri.Scan, i1-i0)
		for i := range scans {
			scans[i] = &v.Slices[i0+i]
		}
		rs, err := reconstructSlices(ctx, scans, pixelSize(v.Meta, v.Slices[i0].Rows, v.Slices[i0].Cols), &cfg.Recon, pr, env, rep.Seconds, steps)
		if err != nil {
			if i1-i0 == 1 {
				return nil, fmt.Errorf("%s slice %d: %w", name, i0, err)
			}
			return nil, fmt.Errorf("%s slices %d to %d: %w", name, i0, i1-1, err)
		}
		for k, r := range rs {
			i := i0 + k
			results[i] = r
			rep.Slices++
			rep.Residual = append(rep.Residual, r.Residual)
			if r.Std != nil {
				rep.StdScale = append(rep.StdScale, r.StdScale)
				rep.PixelMM = append(rep.PixelMM, r.PixelMM)
			}
			if cfg.Recon.Sampling() && cfg.Recon.Sampler.SpreadCheck {
				var f *float64
				if !math.IsNaN(r.SpreadRatio) {
					f = &r.SpreadRatio
				}
				rep.SpreadRatio = append(rep.SpreadRatio, f)
			}
			if pr != nil {
				rep.Cost = &Cost{DenoiserEvalsPerSample: r.DenoiserEvals, VJPsPerSample: r.VJPs, Covariance: r.Covariance, StepVariance: r.StepVariance,
					Antithetic: cfg.Recon.Sampler.Antithetic}
			}
			for _, w := range r.Warnings {
				rep.Warnings = append(rep.Warnings, fmt.Sprintf("%s slice %d: %s", name, i, w))
			}
			if progress != nil && pr == nil {
				progress(i+1, len(v.Slices))
			}
		}
		i0 = i1
	}
	rep.addQC(name, results)
	stop = timer(rep.Seconds, "write")
	defer stop()
	return writeOutputs(outDir, v, results, src, cfg, outBase)
}

// checkSignal refuses k-space without usable signal: all zero, or so small
// (float32 subnormal) that every image would be black; such a file is a
// broken export, not a server problem.
func checkSignal(v *kspaceio.Volume) error {
	for i := range v.Slices {
		var peak float64
		for _, x := range v.Slices[i].KSpace {
			peak = max(peak, math.Abs(float64(real(x))), math.Abs(float64(imag(x))))
		}
		if math.IsNaN(peak) || math.IsInf(peak, 0) {
			return fmt.Errorf("slice %d holds non-finite k-space values", i)
		}
		if peak < minNormal32 {
			return fmt.Errorf("slice %d holds no signal: its k-space is all zero or below the float32 normal range (largest value %g)", i, peak)
		}
	}
	return nil
}

// minNormal32 is the smallest normal float32.
const minNormal32 = 0x1p-126

// outputBases names each k-space file's outputs after its base name; two
// files of one job with the same base (a/k.h5, b/k.h5) get k and k-2, so
// neither overwrites the other's .npy or previews.
func outputBases(files []string) (bases, warnings []string) {
	used := map[string]bool{}
	for _, f := range files {
		b := baseName(f)
		if !used[b] {
			used[b] = true
			bases = append(bases, b)
			continue
		}
		n := 2
		for used[fmt.Sprintf("%s-%d", b, n)] {
			n++
		}
		u := fmt.Sprintf("%s-%d", b, n)
		used[u] = true
		bases = append(bases, u)
		warnings = append(warnings, fmt.Sprintf("two k-space files are named %s; the outputs of %s are named %s", b, filepath.Base(filepath.Dir(f))+"/"+filepath.Base(f), u))
	}
	return bases, warnings
}

// Classify splits inputs (files, or folders walked recursively) into
// k-space files and the rest; companions (see companion) are neither. It
// sniffs magic bytes only: HDF5 is parsed by the job's Reader.
func Classify(inputs []string) (kspace, others []string, err error) {
	files, err := listFiles(inputs)
	if err != nil {
		return nil, nil, err
	}
	for _, f := range files {
		if companion(f) {
			continue
		}
		if _, err := kspaceio.Sniff(f); err == nil {
			if err := checkCompanions(f); err != nil {
				return nil, nil, err
			}
			kspace = append(kspace, f)
		} else if errors.Is(err, kspaceio.ErrUnknownFormat) {
			others = append(others, f)
		} else {
			return nil, nil, fmt.Errorf("%w: %v", ErrBadInput, err)
		}
	}
	return kspace, others, nil
}

// companion reports whether path belongs to another file or to nobody
// (internal/companion has the rule): sidecar options, markers, a .cfl's
// .hdr, NAME_mask.npy, NAME_truth.npy, hidden files and partial uploads.
func companion(path string) bool {
	return companions.Skip(filepath.Base(path))
}

// checkCompanions refuses a k-space file whose companions beside it (mask,
// truth, .hdr, options) are not regular files: a reader must never follow a
// link out of the job or block on a FIFO.
func checkCompanions(path string) error {
	dir := filepath.Dir(path)
	opt, req := companions.Of(filepath.Base(path))
	for _, c := range append(opt, req) {
		p := filepath.Join(dir, c)
		if c == "" {
			continue
		}
		if _, err := os.Lstat(p); err != nil {
			continue
		}
		if err := safefile.Check(dir, p, 0); err != nil {
			return fmt.Errorf("%w: %s: %w", ErrBadInput, c, errors.Unwrap(err))
		}
	}
	return nil
}

// listFiles expands inputs (files, or folders walked recursively) into the
// regular files they name, sorted.
func listFiles(inputs []string) ([]string, error) {
	var files []string
	for _, in := range inputs {
		st, err := os.Stat(in)
		if err != nil {
			return nil, fmt.Errorf("%w: %v", ErrBadInput, err)
		}
		if !st.IsDir() {
			files = append(files, in)
			continue
		}
		err = filepath.WalkDir(in, func(p string, d os.DirEntry, err error) error {
			if err != nil {
				return err
			}
			if d.Type().IsRegular() {
				files = append(files, p)
			}
			return nil
		})
		if err != nil {
			return nil, fmt.Errorf("%w: %v", ErrBadInput, err)
		}
	}
	sort.Strings(files)
	return files, nil
}

func parameters(cfg *configs.Config) map[string]any {
	r := cfg.Recon
	p := map[string]any{"method": r.Method, "device": r.Device}
	m, _ := configs.LookupMethod(r.Method)
	for _, name := range m.Params {
		p[name] = r.Param(name)
	}
	p["coil_maps"] = map[string]any{"method": r.CoilMaps.Method, "calib": r.CoilMaps.Calib, "kernel": r.CoilMaps.Kernel,
		"threshold": r.CoilMaps.Threshold, "crop": r.CoilMaps.Crop}
	return p
}

// timer adds the seconds until the returned func is called to t[key].
func timer(t map[string]float64, key string) func() {
	start := time.Now()
	return func() { t[key] += time.Since(start).Seconds() }
}

// pixelSize is the mean in-plane pixel size in mm of a rows×cols slice of
// a file with header m: its reconstruction field of view over its matrix
// (the image matrix when the header gives none); 0 when the header has no
// field of view (NumPy, BART files).
func pixelSize(m kspaceio.Meta, rows, cols int) float64 {
	fx, fy := m.ReconFOVmm[0], m.ReconFOVmm[1]
	if !(fx > 0 && fy > 0) || rows < 1 || cols < 1 {
		return 0
	}
	nx, ny := m.ReconMatrix[0], m.ReconMatrix[1]
	if nx < 1 || ny < 1 {
		nx, ny = cols, rows
	}
	return (fx/float64(nx) + fy/float64(ny)) / 2
}
