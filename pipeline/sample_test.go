package pipeline

import (
	"context"
	"errors"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/kspaced/kspaced/configs"
	"github.com/kspaced/kspaced/mri"
	"github.com/kspaced/kspaced/mri/kspaceio"
	"github.com/kspaced/kspaced/mri/simulate"
	"github.com/kspaced/kspaced/priors"
	"github.com/kspaced/kspaced/priors/builtin"
	"github.com/kspaced/kspaced/qc"
)

// TestRunMMPSPlumbing runs mmps end to end with a tiny untrained U-Net: it
// checks the wiring (shapes, std output, cost accounting, report), not image
// quality, which the priors package tests with exact Gaussian priors.
func TestRunMMPSPlumbing(t *testing.T) {
	dir := t.TempDir()
	const n, coils = 48, 4
	img := make([]complex64, n*n)
	for i, v := range simulate.SheppLogan(n) {
		img[i] = complex(v, 0)
	}
	mask := make([]float32, n*n)
	for r := 0; r < n; r++ {
		for c := 0; c < n; c++ {
			if c%2 == 0 || (c >= n/2-5 && c < n/2+5) {
				mask[r*n+c] = 1
			}
		}
	}
	// Noisy, as every real scan: with no noise level MMPS refuses (never σ = 0).
	scan, err := simulate.KSpace(img, simulate.CoilMaps(coils, n, n), coils, n, n, mask, 0.01, rand.New(rand.NewPCG(1, 2)))
	if err != nil {
		t.Fatal(err)
	}
	in := filepath.Join(dir, "phantom.npy")
	if err := kspaceio.WriteNPYComplex64(in, []int{coils, n, n}, scan.KSpace); err != nil {
		t.Fatal(err)
	}
	if err := kspaceio.WriteNPYFloat32(filepath.Join(dir, "phantom_mask.npy"), []int{n, n}, mask); err != nil {
		t.Fatal(err)
	}
	net, err := priors.NewUNet(priors.SmallUNet(n, n), 1)
	if err != nil {
		t.Fatal(err)
	}
	ckpt := filepath.Join(dir, "prior.safetensors")
	if err := net.Save(ckpt, priors.CheckpointMeta{Architecture: net.Config(),
		Normalisation: priors.Normalisation{Scheme: NormalisationScheme}}); err != nil {
		t.Fatal(err)
	}
	cfg := configs.Default()
	cfg.Recon.Method = "mmps"
	cfg.Recon.Sampler.Prior = ckpt
	cfg.Recon.Sampler.Steps, cfg.Recon.Sampler.CGIterations, cfg.Recon.Sampler.Samples = 4, 2, 3
	cfg.Recon.CoilMaps.Calib, cfg.Recon.CoilMaps.Kernel = 10, 4
	cfg.Output.NPY = true
	out := filepath.Join(dir, "out")
	if err := os.Mkdir(out, 0o755); err != nil {
		t.Fatal(err)
	}
	var ticks [][2]int
	rep, err := Run(context.Background(), Job{ID: "p", Inputs: []string{in}, Config: cfg}, out, func(done, total int) {
		ticks = append(ticks, [2]int{done, total})
	})
	if err != nil {
		t.Fatal(err)
	}
	if rep.Prior != ckpt || rep.Cost == nil || rep.Cost.DenoiserEvalsPerSample != 4 || rep.Cost.VJPsPerSample < 4 ||
		rep.Cost.Covariance != "jacobian" { // auto: this prior has no covariance head
		t.Fatalf("report prior %q cost %+v", rep.Prior, rep.Cost)
	}
	// Progress counts the sampler's steps: 1, 2, 3, 4 of 4 for one slice.
	if want := [][2]int{{1, 4}, {2, 4}, {3, 4}, {4, 4}}; !slices.Equal(ticks, want) {
		t.Errorf("progress %v, want %v", ticks, want)
	}
	mean, err := kspaceio.ReadNPY(filepath.Join(out, "phantom.npy"))
	if err != nil {
		t.Fatal(err)
	}
	std, err := kspaceio.ReadNPY(filepath.Join(out, "phantom_std.npy"))
	if err != nil {
		t.Fatal(err)
	}
	if len(mean.Data) != n*n || len(std.Data) != n*n || std.Complex {
		t.Fatalf("mean %v, std %v", mean.Shape, std.Shape)
	}
	var pos int
	for _, v := range std.Data {
		if real(v) > 0 {
			pos++
		}
	}
	if pos < n*n/4 {
		t.Fatalf("std positive at only %d of %d pixels", pos, n*n)
	}
	// Outside the coil maps' support the mean and std are 0 (the data say
	// nothing there); inside they are not.
	vol, err := kspaceio.Read(in)
	if err != nil {
		t.Fatal(err)
	}
	prep, err := Prepare(context.Background(), &vol.Slices[0], cfg.Recon.CoilMaps)
	if err != nil {
		t.Fatal(err)
	}
	var inside, outside int
	for i, ok := range prep.Support() {
		switch {
		case !ok && (mean.Data[i] != 0 || real(std.Data[i]) != 0):
			t.Fatalf("pixel %d outside the coil maps: mean %v, std %v", i, mean.Data[i], std.Data[i])
		case ok && mean.Data[i] != 0:
			inside++
		case !ok:
			outside++
		}
	}
	if outside == 0 || inside < n*n/4 {
		t.Errorf("support: %d pixels outside, %d nonzero inside", outside, inside)
	}
	// Two DICOM series (mean and std) and one preview.
	dcm, _ := filepath.Glob(filepath.Join(out, "dicom", "*", "*.dcm"))
	png, _ := filepath.Glob(filepath.Join(out, "previews", "phantom", "*.png"))
	if len(dcm) != 2 || len(png) != 1 {
		t.Fatalf("dicom %v previews %v", dcm, png)
	}
	// QC: a sampling method reports uncertainty and, with its prior,
	// typicality (uncalibrated: reported, not flagged).
	if rep.QC == nil || rep.QC.Series[0].PerSlice[0] == nil {
		t.Fatalf("no QC: %+v", rep.QC)
	}
	q := rep.QC.Series[0].PerSlice[0]
	if q.Uncertainty == nil || !(q.Uncertainty.Relative > 0) || q.Typicality == nil || q.DataConsistency == nil || !(q.DataConsistency.Ratio > 0) {
		t.Fatalf("QC of a sampled slice: %+v", q)
	}

	// A Gaussian prior checkpoint goes through the same path.
	gpath := filepath.Join(dir, "gauss.safetensors")
	dim := 2 * n * n
	diag := make([]float32, dim)
	for i := range diag {
		diag[i] = 0.1
	}
	g, err := priors.NewGaussian(make([]float32, dim), diag, nil, 2, n, n)
	if err != nil {
		t.Fatal(err)
	}
	if err := priors.SaveGaussian(gpath, g, priors.GaussianMeta{Normalisation: priors.Normalisation{Scheme: NormalisationScheme}}); err != nil {
		t.Fatal(err)
	}
	cfg.Recon.Sampler.Prior = gpath
	if rep, err = Run(context.Background(), Job{ID: "g", Inputs: []string{in}, Config: cfg}, t.TempDir(), nil); err != nil {
		t.Fatalf("gaussian prior: %v", err)
	}
	if rep.Residual[0] > 0.5 {
		t.Fatalf("gaussian prior: residual %g", rep.Residual[0])
	}
	if rep.Cost == nil || rep.Cost.StepVariance != "ddpm" {
		t.Fatalf("gaussian prior: cost %+v, want the default step variance ddpm", rep.Cost)
	}
	jacCost := rep.Cost // covariance auto: the Gaussian's Jacobian one
	// recon.sampler.step_variance posterior: drawn with the diagonal
	// covariance (the Gaussian's exact one), refused with the Jacobian one.
	post := *cfg
	post.Recon.Sampler.StepVariance, post.Recon.Sampler.Covariance = "posterior", "diagonal"
	if rep, err = Run(context.Background(), Job{ID: "gp", Inputs: []string{in}, Config: &post}, t.TempDir(), nil); err != nil {
		t.Fatalf("step variance posterior: %v", err)
	}
	if rep.Cost == nil || rep.Cost.StepVariance != "posterior" || rep.Cost.Covariance != "diagonal" || rep.Residual[0] > 0.5 {
		t.Fatalf("step variance posterior: cost %+v, residual %g", rep.Cost, rep.Residual[0])
	}
	post.Recon.Sampler.Covariance = "jacobian"
	if _, err := Run(context.Background(), Job{ID: "gj", Inputs: []string{in}, Config: &post}, t.TempDir(), nil); !errors.Is(err, ErrConfig) || !strings.Contains(err.Error(), "step_variance") {
		t.Errorf("step variance posterior with the Jacobian covariance: error %v, want a configuration error naming step_variance", err)
	}
	// readStd reads a run's mean and std images.
	readStd := func(dir string) (m, s []complex64) {
		a, err := kspaceio.ReadNPY(filepath.Join(dir, "phantom.npy"))
		if err != nil {
			t.Fatal(err)
		}
		b, err := kspaceio.ReadNPY(filepath.Join(dir, "phantom_std.npy"))
		if err != nil {
			t.Fatal(err)
		}
		return a.Data, b.Data
	}
	// recon.sampler.jacobian_sigma: the diagonal covariance with the
	// Jacobian one on the band's steps, which the VJP count shows.
	band := *cfg
	band.Recon.Sampler.Covariance, band.Recon.Sampler.JacobianSigma = "diagonal", []float64{0.01, 1}
	bandOut, pcOut := t.TempDir(), t.TempDir()
	brep, err := Run(context.Background(), Job{ID: "gb", Inputs: []string{in}, Config: &band}, bandOut, nil)
	if err != nil {
		t.Fatalf("jacobian_sigma: %v", err)
	}
	if brep.Cost == nil || jacCost.Covariance != "jacobian" || brep.Cost.Covariance != "diagonal" || !(brep.Cost.VJPsPerSample > 0 && brep.Cost.VJPsPerSample < jacCost.VJPsPerSample) {
		t.Errorf("jacobian_sigma [0.01, 1]: cost %+v, want diagonal with some but fewer VJPs than the Jacobian run's %+v", brep.Cost, jacCost)
	}
	// recon.sampler.precondition: the band's CG preconditioned, same VJPs,
	// another mean.
	pc := band
	pc.Recon.Sampler.Precondition = true
	pcRep, err := Run(context.Background(), Job{ID: "gp", Inputs: []string{in}, Config: &pc}, pcOut, nil)
	if err != nil {
		t.Fatalf("precondition: %v", err)
	}
	bm, _ := readStd(bandOut)
	pm, _ := readStd(pcOut)
	if pcRep.Cost == nil || pcRep.Cost.VJPsPerSample != brep.Cost.VJPsPerSample || slices.Equal(bm, pm) {
		t.Errorf("precondition: cost %+v against the band's %+v, means equal %v; want the same VJPs and another mean", pcRep.Cost, brep.Cost, slices.Equal(bm, pm))
	}
	// recon.sampler.spread_check: the same samples (same seed), the std
	// scaled by the ratio the report gives.
	plainOut, checkOut := t.TempDir(), t.TempDir()
	if _, err := Run(context.Background(), Job{ID: "g0", Inputs: []string{in}, Config: cfg}, plainOut, nil); err != nil {
		t.Fatal(err)
	}
	checked := *cfg
	checked.Recon.Sampler.SpreadCheck = true
	crep, err := Run(context.Background(), Job{ID: "g1", Inputs: []string{in}, Config: &checked}, checkOut, nil)
	if err != nil {
		t.Fatalf("spread check: %v", err)
	}
	if len(crep.SpreadRatio) != 1 || crep.SpreadRatio[0] == nil || !(*crep.SpreadRatio[0] > 0) {
		t.Fatalf("spread check: report spread_ratio %v", crep.SpreadRatio)
	}
	ratio := *crep.SpreadRatio[0]
	m0, s0 := readStd(plainOut)
	m1, s1 := readStd(checkOut)
	for i := range s0 {
		if m0[i] != m1[i] || math.Abs(float64(real(s1[i]))-ratio*float64(real(s0[i]))) > 1e-5*(1+ratio*float64(real(s0[i]))) {
			t.Fatalf("pixel %d: mean %v and %v, std %v and %v; want equal means and the std × %.4f", i, m0[i], m1[i], s0[i], s1[i], ratio)
		}
	}
	if p, _ := Run(context.Background(), Job{ID: "g2", Inputs: []string{in}, Config: cfg}, t.TempDir(), nil); p != nil && p.SpreadRatio != nil {
		t.Errorf("spread_ratio reported without the check: %v", p.SpreadRatio)
	}
	t.Logf("spread check under the Gaussian prior: std × %.3f", ratio)

	// recon.sampler.antithetic (the default) reaches the sampler: same seed,
	// independent samples instead, so the pairs' second samples and the mean
	// differ; each report says which it drew.
	indepOut := t.TempDir()
	indep := *cfg
	indep.Recon.Sampler.Antithetic = false
	irep, err := Run(context.Background(), Job{ID: "gi", Inputs: []string{in}, Config: &indep}, indepOut, nil)
	if err != nil {
		t.Fatalf("independent samples: %v", err)
	}
	mi, _ := readStd(indepOut)
	if !cfg.Recon.Sampler.Antithetic || crep.Cost == nil || !crep.Cost.Antithetic || irep.Cost == nil || irep.Cost.Antithetic || slices.Equal(mi, m0) {
		t.Errorf("antithetic: default %v, costs %+v and %+v, means equal %v", cfg.Recon.Sampler.Antithetic, crep.Cost, irep.Cost, slices.Equal(mi, m0))
	}

	// A network built (trained) at another size reconstructs this one: it is
	// padded to its stride and cropped back (issue 14).
	cfg.Recon.Sampler.Prior = filepath.Join(dir, "small.safetensors")
	small, _ := priors.NewUNet(priors.SmallUNet(16, 16), 1)
	if err := small.Save(cfg.Recon.Sampler.Prior, priors.CheckpointMeta{Architecture: small.Config(),
		Normalisation: priors.Normalisation{Scheme: NormalisationScheme}}); err != nil {
		t.Fatal(err)
	}
	if rep, err := Run(context.Background(), Job{ID: "q", Inputs: []string{in}, Config: cfg}, t.TempDir(), nil); err != nil {
		t.Fatalf("16×16-built network on a 48×48 scan: %v", err)
	} else if len(rep.Residual) != 1 || math.IsNaN(rep.Residual[0]) {
		t.Fatalf("16×16-built network on a 48×48 scan: residual %v", rep.Residual)
	}
	// A Gaussian prior is per pixel: another size is refused with a clear error.
	g16, err := priors.NewGaussian(make([]float32, 2*16*16), diag[:2*16*16], nil, 2, 16, 16)
	if err != nil {
		t.Fatal(err)
	}
	cfg.Recon.Sampler.Prior = filepath.Join(dir, "g16.safetensors")
	if err := priors.SaveGaussian(cfg.Recon.Sampler.Prior, g16, priors.GaussianMeta{Normalisation: priors.Normalisation{Scheme: NormalisationScheme}}); err != nil {
		t.Fatal(err)
	}
	if _, err := Run(context.Background(), Job{ID: "r", Inputs: []string{in}, Config: cfg}, t.TempDir(), nil); err == nil || !strings.Contains(err.Error(), "serves no other size") {
		t.Fatalf("16×16 Gaussian on a 48×48 scan: %v", err)
	}
}

// fakeDevice records how the pipeline uses a Device; its prior and
// operator are the CPU's, so results are those of the CPU.
type fakeDevice struct {
	acquired, loads, priors, ops, released, errs int
	fail                                         error
}

func (f *fakeDevice) Name() string { return "cuda" }
func (f *fakeDevice) Acquire(context.Context) (func(), error) {
	f.acquired++
	return func() { f.acquired-- }, nil
}
func (f *fakeDevice) Prior(path string) (priors.Denoiser, *priors.PriorInfo, func(), error) {
	d, info, err := priors.LoadPrior(path)
	if err != nil {
		return nil, nil, nil, err
	}
	f.loads++
	f.priors++
	return d, info, func() { f.priors-- }, nil
}
func (f *fakeDevice) Operator(maps []complex64, coils, rows, cols int, mask []float32) (mri.Operator, error) {
	f.ops++
	return mri.NewSENSE(maps, coils, rows, cols, mask), nil
}
func (f *fakeDevice) Release(mri.Operator) error { f.released++; return nil }
func (f *fakeDevice) Err() error                 { f.errs++; return f.fail }

func TestRunOnDevice(t *testing.T) {
	dir := t.TempDir()
	in, _, cfg := simulateBrain(t, dir)
	net, err := priors.NewUNet(priors.SmallUNet(96, 96), 1)
	if err != nil {
		t.Fatal(err)
	}
	ckpt := filepath.Join(dir, "prior.safetensors")
	if err := net.Save(ckpt, priors.CheckpointMeta{Architecture: net.Config()}); err != nil {
		t.Fatal(err)
	}
	cfg.Recon.Method, cfg.Recon.Device = "dps", "cuda"
	cfg.Recon.Sampler.Prior, cfg.Recon.Sampler.Steps, cfg.Recon.Sampler.Samples = ckpt, 2, 1
	cfg.Output.DICOM, cfg.Output.Previews = false, false
	if _, err := Run(context.Background(), Job{ID: "x", Inputs: []string{in}, Config: cfg}, dir, nil); err == nil {
		t.Fatal("recon.device cuda without a device accepted")
	}
	dev := &fakeDevice{}
	if _, err := Run(context.Background(), Job{ID: "x", Inputs: []string{in}, Config: cfg, Device: dev}, dir, nil); err != nil {
		t.Fatal(err)
	}
	if dev.loads != 1 || dev.ops != 1 || dev.released != 1 || dev.errs != 1 {
		t.Fatalf("device use %+v, want one of each", dev)
	}
	if dev.acquired != 0 || dev.priors != 0 {
		t.Fatalf("device or prior not given back: %+v", dev)
	}
	dev = &fakeDevice{fail: errors.New("kernel fault")}
	if _, err := Run(context.Background(), Job{ID: "y", Inputs: []string{in}, Config: cfg, Device: dev}, dir, nil); err == nil || !strings.Contains(err.Error(), "kernel fault") {
		t.Fatalf("device failure: %v", err)
	}
}

// recon.sampler's automatic choices: the built-in prior (a U-Net with a
// covariance head) samples with the diagonal covariance at 32 steps; a
// prior without a head, or an explicit jacobian, with VJPs at 64; explicit
// steps stay.
func TestSamplerSettings(t *testing.T) {
	withHead, _, err := builtin.Load()
	if err != nil {
		t.Fatal(err)
	}
	noHead, err := priors.NewUNet(priors.SmallUNet(16, 16), 1)
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		d         priors.Denoiser
		cov       string
		steps     int
		wantCov   string
		wantSteps int
	}{
		{withHead, "auto", 0, "diagonal", 32},
		{withHead, "jacobian", 0, "jacobian", 64},
		{withHead, "auto", 12, "diagonal", 12},
		{noHead, "auto", 0, "jacobian", 64},
	} {
		rc := configs.Default().Recon
		rc.Method, rc.Sampler.Covariance, rc.Sampler.Steps = "mmps", c.cov, c.steps
		if cov, steps := samplerSettings(c.d, &rc); cov != c.wantCov || steps != c.wantSteps {
			t.Errorf("%T covariance %s steps %d: got %s, %d; want %s, %d", c.d, c.cov, c.steps, cov, steps, c.wantCov, c.wantSteps)
		}
	}
}

// stdScale's order: the slice's own spread check, recon.sampler.std_scale,
// the prior's calibration (qc's TestSpreadCalibration: by pixel size), 1.
func TestStdScale(t *testing.T) {
	withCal := &qcEnv{cal: &qc.Calibration{Spread: []qc.Spread{{PixelMM: 1.5, Scale: 1.2, Scans: 10}}}}
	noCal := &qcEnv{cal: qc.Classical()}
	rc := configs.Default().Recon
	for _, c := range []struct {
		check bool
		scale float64
		env   *qcEnv
		ratio float64
		want  float64
	}{
		{false, 0, noCal, 0, 1},
		{false, 0, withCal, 0, 1.2},
		{false, 0.9, withCal, 0, 0.9},
		{true, 0.9, withCal, 1.5, 1.5},
		{true, 0, withCal, math.NaN(), 1.2}, // noise explains the held-out lines: the calibration stands
		{false, 0, withCal, 1.5, 1.2},       // a ratio without the check is ignored
	} {
		rc.Sampler.SpreadCheck, rc.Sampler.StdScale = c.check, c.scale
		if got := stdScale(&rc, c.env, c.ratio, 0.9); got != c.want {
			t.Errorf("check %v, std_scale %v, ratio %v: %v, want %v", c.check, c.scale, c.ratio, got, c.want)
		}
	}
}

func TestPixelSize(t *testing.T) {
	var m kspaceio.Meta
	if got := pixelSize(m, 128, 128); got != 0 {
		t.Errorf("no field of view: %v, want 0 (unknown)", got)
	}
	m.ReconFOVmm = [3]float64{220, 220, 5}
	if got := pixelSize(m, 256, 256); math.Abs(got-220.0/256) > 1e-12 {
		t.Errorf("FOV 220 mm, no recon matrix, 256² image: %v", got)
	}
	m.ReconMatrix = [3]int{320, 320, 1} // fastMRI: k-space 640 wide (readout oversampling), image 320
	if got := pixelSize(m, 640, 368); math.Abs(got-220.0/320) > 1e-12 {
		t.Errorf("recon matrix 320: %v, want %v", got, 220.0/320)
	}
}
