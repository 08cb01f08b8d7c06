package retrain

import (
	"bytes"
	"context"
	"encoding/json"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/kspaced/kspaced/mri"
	"github.com/kspaced/kspaced/mri/simulate"
	"github.com/kspaced/kspaced/posterior"
	"github.com/kspaced/kspaced/priors"
)

// emObservations simulates n scans of random-ellipse phantoms (a
// distinctly non-Gaussian image family) with smooth phase, simulated coils,
// a random 1-D mask per scan and complex noise, in the units Prepare would
// leave them (truth peak 1, scale = 99th-percentile of the zero-filled
// magnitude).
func emObservations(t testing.TB, n, size, coils int, accel, noise float64, seed uint64) []Observation {
	t.Helper()
	rng := rand.New(rand.NewPCG(seed, 0x656d))
	maps := simulate.CoilMaps(coils, size, size)
	obs := make([]Observation, n)
	for i := range obs {
		mag := emShapes(size, rng)
		var peak float32
		for _, v := range mag {
			peak = max(peak, v)
		}
		ph := simulate.SmoothPhase(size, size, rng)
		img := make([]complex64, size*size)
		for j := range img {
			m := float64(max(mag[j], 0) / peak)
			img[j] = complex(float32(m*math.Cos(float64(ph[j]))), float32(m*math.Sin(float64(ph[j]))))
		}
		mask, err := mri.RandomMask(size, size, 0.125, accel, seed*1000+uint64(i))
		if err != nil {
			t.Fatal(err)
		}
		scan, err := simulate.KSpace(img, maps, coils, size, size, mask, noise, rng)
		if err != nil {
			t.Fatal(err)
		}
		op := mri.NewSENSE(maps, coils, size, size, mask)
		zf := make([]complex64, size*size)
		op.Adjoint(zf, scan.KSpace)
		mags := make([]float32, len(zf))
		mri.Magnitude(mags, zf)
		sorted := append([]float32(nil), mags...)
		for a := 1; a < len(sorted); a++ {
			for b := a; b > 0 && sorted[b] < sorted[b-1]; b-- {
				sorted[b], sorted[b-1] = sorted[b-1], sorted[b]
			}
		}
		obs[i] = Observation{Name: "sim", A: op, Y: scan.KSpace, NoiseVar: noise * noise,
			Scale: float64(sorted[int(0.99*float64(len(sorted)-1))]), Truth: img}
	}
	return obs
}

// emShapes draws one to three bright discs on a dark background.
func emShapes(size int, rng *rand.Rand) []float32 {
	img := make([]float32, size*size)
	for range 1 + rng.IntN(3) {
		r := 1.5 + 2.5*rng.Float64()
		cy, cx := r+rng.Float64()*(float64(size)-2*r), r+rng.Float64()*(float64(size)-2*r)
		v := float32(0.5 + 0.5*rng.Float64())
		for y := range size {
			for x := range size {
				if dy, dx := float64(y)+0.5-cy, float64(x)+0.5-cx; dy*dy+dx*dx <= r*r {
					img[y*size+x] = max(img[y*size+x], v)
				}
			}
		}
	}
	return img
}

func emTestOptions(dir string, laps int) EMOptions {
	cfg := emTinyNet()
	return EMOptions{
		Dir: dir, Laps: laps,
		Gaussian: GaussianEMOptions{Rank: 4, Laps: 4, Samples: 2, FAIter: 10},
		Network:  cfg,
		Sampler:  posterior.SampleOptions{Steps: 16, CGIter: 2},
		Train:    priors.TrainOptions{Steps: 400, BatchSize: 8, LR: 2e-3, EMADecay: 0.99, WarmupSteps: 20},
		Workers:  2, Seed: 1, DataID: "test-data", DataDescription: "ellipses",
		Normalisation: priors.Normalisation{Scheme: "test"},
		EvalSamples:   2,
	}
}

// TestEMEndToEnd runs a tiny EM (a Gaussian lap and two network laps on
// 16×16 two-coil ellipse phantoms) and checks that the lap-2 prior
// reconstructs held-out scans better than the Gaussian it started from,
// that every file the run promises exists, and that a finished run
// continues without recomputing anything.
func TestEMEndToEnd(t *testing.T) {
	obs := emObservations(t, 56, 16, 2, 4, 0.01, 1)
	train, val := obs[:44], obs[44:]
	dir := t.TempDir()
	var log bytes.Buffer
	opt := emTestOptions(dir, 2)
	opt.Log = &log
	recs, err := RunEM(context.Background(), train, val, opt)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("\n%s", log.String())
	if len(recs) != 3 {
		t.Fatalf("%d lap records, want 3", len(recs))
	}
	g, v2 := recs[0].Validation, recs[2].Validation
	if g.N != len(val) || g.WithTruth != len(val) {
		t.Fatalf("validation summary %+v", g)
	}
	// The network prior fits the held-out scans better than the Gaussian:
	// closer to the truth, and data consistency at least as close to the
	// noise level.
	if !(v2.PSNR > g.PSNR+0.5) || !(v2.SSIM > g.SSIM) {
		t.Errorf("lap 2 PSNR %.2f dB, SSIM %.4f; Gaussian start %.2f dB, %.4f", v2.PSNR, v2.SSIM, g.PSNR, g.SSIM)
	}
	if v1 := recs[1].Validation; !(v2.PSNR > v1.PSNR) {
		t.Errorf("lap 2 PSNR %.2f dB not above lap 1's %.2f dB", v2.PSNR, v1.PSNR)
	}
	if math.Abs(math.Log(v2.DataConsistency)) > math.Abs(math.Log(g.DataConsistency))+0.1 {
		t.Errorf("lap 2 data consistency %.3f is further from 1 than the Gaussian's %.3f", v2.DataConsistency, g.DataConsistency)
	}
	for k, r := range recs {
		if _, err := os.Stat(filepath.Join(dir, LapCheckpoint(k))); err != nil {
			t.Errorf("lap %d: %v", k, err)
		}
		if r.Lap != k || r.LapSeconds <= 0 || r.Finished.IsZero() {
			t.Errorf("record %d: %+v", k, r)
		}
		if k > 0 && (r.MStepSteps != 400 || r.EStepSeconds <= 0 || r.Kind != priors.KindUNet) {
			t.Errorf("record %d: %+v", k, r)
		}
	}
	d, info, err := priors.LoadPrior(filepath.Join(dir, LapCheckpoint(2)))
	if err != nil || info.Kind != priors.KindUNet || info.Provenance.EMLap != 2 || info.Normalisation.Scheme != "test" {
		t.Fatalf("lap 2 checkpoint: %v %+v", err, info)
	}
	if _, ok := d.(*priors.UNet); !ok {
		t.Fatalf("lap 2 prior is %T", d)
	}
	if _, info, err := priors.LoadPrior(filepath.Join(dir, LapCheckpoint(0))); err != nil || info.Kind != priors.KindGaussian || info.Rank != 4 {
		t.Fatalf("lap 0 checkpoint: %v %+v", err, info)
	}
	left, _ := filepath.Glob(filepath.Join(dir, "*.samples.*"))
	left2, _ := filepath.Glob(filepath.Join(dir, "*.train.*"))
	if len(left)+len(left2) > 0 {
		t.Errorf("intermediate files left behind: %v %v", left, left2)
	}
	var onDisk []LapRecord
	raw, err := os.ReadFile(filepath.Join(dir, "laps.json"))
	if err != nil || json.Unmarshal(raw, &onDisk) != nil || len(onDisk) != 3 {
		t.Fatalf("laps.json: %v\n%s", err, raw)
	}
	if math.Abs(onDisk[2].Validation.PSNR-v2.PSNR) > 1e-9 {
		t.Errorf("laps.json lap 2 PSNR %v, run returned %v", onDisk[2].Validation.PSNR, v2.PSNR)
	}
	// A second call with the same laps has nothing to do.
	log.Reset()
	again, err := RunEM(context.Background(), train, val, opt)
	if err != nil || len(again) != 3 || again[2].Finished != recs[2].Finished {
		t.Fatalf("rerun: %v, %d records", err, len(again))
	}
	// Other data in the same folder is refused.
	other := opt
	other.DataID = "other"
	if _, err := RunEM(context.Background(), train, val, other); err == nil || !strings.Contains(err.Error(), "another run") {
		t.Fatalf("other data accepted: %v", err)
	}
	// With AdoptData a copy of the run continues on the other data: lap 3
	// is fitted on it, laps 0–2 stay as they were, run.json remembers.
	dirC := t.TempDir()
	for _, f := range []string{"run.json", "laps.json", LapCheckpoint(0), LapCheckpoint(1), LapCheckpoint(2)} {
		copyFile(t, filepath.Join(dir, f), filepath.Join(dirC, f))
	}
	adopt := other
	adopt.Dir, adopt.Log, adopt.Laps, adopt.AdoptData = dirC, nil, 3, true
	adopted, err := RunEM(context.Background(), train, val, adopt)
	if err != nil {
		t.Fatalf("adopting other data: %v", err)
	}
	if len(adopted) != 4 || adopted[2].Finished != recs[2].Finished || adopted[2].DataID != opt.DataID || adopted[3].DataID != "other" {
		t.Fatalf("adopted run's laps: %+v", adopted)
	}
	var run emRun
	if raw, err := os.ReadFile(filepath.Join(dirC, "run.json")); err != nil || json.Unmarshal(raw, &run) != nil {
		t.Fatalf("run.json: %v", err)
	}
	if run.DataID != "other" || len(run.Earlier) != 1 || run.Earlier[0] != (EarlierData{DataID: opt.DataID, LastLap: 2}) {
		t.Fatalf("run.json after adopting: %+v", run)
	}
	// Adoption is only for the same shape of run.
	reshaped := adopt
	reshaped.DataID, reshaped.Seed = "third", opt.Seed+1
	if _, err := RunEM(context.Background(), train, val, reshaped); err == nil || !strings.Contains(err.Error(), "another run") {
		t.Fatalf("another seed adopted: %v", err)
	}

	// Interrupt lap 2 in its M-step, and in its E-step after its first saved
	// part, each in a copy of the run stopped after lap 1; continue, and get
	// exactly the uninterrupted lap 2.
	for _, stop := range []string{trainFile(2), shardFile(2, 0, 10)} {
		resumed, dirB := interruptLap2(t, train, val, opt, dir, onDisk[:2], stop)
		if len(resumed) != 3 || !resumed[2].EStepResumed || resumed[1].Finished != recs[1].Finished ||
			resumed[2].MStepResumed != (stop == trainFile(2)) {
			t.Fatalf("stopped at %s: resumed records: %+v", stop, resumed)
		}
		sameWeights(t, filepath.Join(dir, LapCheckpoint(2)), filepath.Join(dirB, LapCheckpoint(2)))
	}
}

// interruptLap2 copies the run in dir as it stood after lap 1 (laps), runs
// lap 2 there until the file stop appears, cancels, checks that lap 2 did
// not finish, and runs it again to the end.
func interruptLap2(t *testing.T, train, val []Observation, opt EMOptions, dir string, laps []LapRecord, stop string) ([]LapRecord, string) {
	t.Helper()
	dirB := t.TempDir()
	for _, f := range []string{"run.json", LapCheckpoint(0), LapCheckpoint(1)} {
		copyFile(t, filepath.Join(dir, f), filepath.Join(dirB, f))
	}
	first, _ := json.Marshal(laps)
	if err := os.WriteFile(filepath.Join(dirB, "laps.json"), first, 0o644); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go func() {
		for ctx.Err() == nil {
			if _, err := os.Stat(filepath.Join(dirB, stop)); err == nil {
				cancel()
				return
			}
			time.Sleep(5 * time.Millisecond)
		}
	}()
	optB := opt
	optB.Dir, optB.Log = dirB, nil
	if _, err := RunEM(ctx, train, val, optB); err == nil || ctx.Err() == nil {
		t.Fatalf("run stopped at %s: %v", stop, err)
	}
	if _, err := os.Stat(filepath.Join(dirB, LapCheckpoint(2))); err == nil {
		t.Fatalf("lap 2 finished before the interruption at %s", stop)
	}
	resumed, err := RunEM(context.Background(), train, val, optB)
	if err != nil {
		t.Fatal(err)
	}
	return resumed, dirB
}

// sameWeights fails unless two U-Net checkpoints hold the same weights bit for bit.
func sameWeights(t *testing.T, pathA, pathB string) {
	t.Helper()
	ua, _, err := priors.LoadUNet(pathA)
	if err != nil {
		t.Fatal(err)
	}
	ub, _, err := priors.LoadUNet(pathB)
	if err != nil {
		t.Fatal(err)
	}
	for i, p := range ua.Params() {
		a, b := make([]float32, p.Len()), make([]float32, p.Len())
		ua.Backend().Download(a, p.Value)
		ub.Backend().Download(b, ub.Params()[i].Value)
		for j := range a {
			if a[j] != b[j] {
				t.Fatalf("%s[%d]: %g in %s, %g in %s", p.Name, j, b[j], pathB, a[j], pathA)
			}
		}
	}
}

func copyFile(t *testing.T, src, dst string) {
	t.Helper()
	b, err := os.ReadFile(src)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(dst, b, 0o644); err != nil {
		t.Fatal(err)
	}
}

func emTinyNet() priors.UNetConfig {
	return priors.UNetConfig{Channels: 2, Rows: 16, Cols: 16, Widths: []int{8, 16}, Blocks: 1,
		EmbedDim: 16, EmbedMaxPeriod: 1000, Unshuffle: 1, Groups: 4, Heads: 1}
}
