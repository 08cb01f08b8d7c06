package retrain

import (
	"context"
	"math/rand/v2"
	"path/filepath"
	"testing"

	"github.com/kspaced/kspaced/priors"
)

// TestCheckpointTrainedAtOneSizeServesAnother trains on 16×16 crops of
// 48×48 images, saves, reloads, and denoises 48×40 images: the denoising
// gain at the new size matches the one at the training size, and both beat
// the noisy input by far.
func TestCheckpointTrainedAtOneSizeServesAnother(t *testing.T) {
	if testing.Short() {
		t.Skip("trains a network")
	}
	const big = 48
	rng := rand.New(rand.NewPCG(4, 4))
	imgs := make([]float32, 64*2*big*big)
	for i := 0; i < 64; i++ {
		copy(imgs[i*2*big*big:], emShapes(big, rng)) // real channel; imaginary 0
	}
	cfg := emTinyNet()
	u, err := priors.NewUNet(cfg, 1)
	if err != nil {
		t.Fatal(err)
	}
	_, err = priors.Train(context.Background(), u, &priors.SliceDataset{C: 2, H: big, W: big, Data: imgs},
		priors.TrainOptions{Steps: 300, BatchSize: 16, LR: 2e-3, WarmupSteps: 20, EMADecay: 0.99, CropRows: 16, CropCols: 16, Scales: []float64{1, 0.75}}, nil)
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "p.safetensors")
	if err := u.Save(path, priors.CheckpointMeta{Architecture: u.Config()}); err != nil {
		t.Fatal(err)
	}
	v, _, err := priors.LoadUNet(path)
	if err != nil {
		t.Fatal(err)
	}
	gain := func(h, w int) float64 {
		d, err := v.AtSize(h, w)
		if err != nil {
			t.Fatal(err)
		}
		r := rand.New(rand.NewPCG(uint64(h), uint64(w)))
		const sigma = 0.2
		var in, out float64
		for k := 0; k < 8; k++ {
			x := make([]float32, 2*h*w)
			sq := max(h, w)
			shapes := emShapes(sq, r)
			for row := 0; row < h; row++ {
				copy(x[row*w:(row+1)*w], shapes[row*sq:])
			}
			xt := make([]float32, len(x))
			for i := range x {
				xt[i] = x[i] + float32(sigma*r.NormFloat64())
			}
			dn := make([]float32, len(x))
			if err := d.Denoise(dn, xt, []float32{sigma}); err != nil {
				t.Fatal(err)
			}
			for i := range x {
				in += float64((xt[i] - x[i]) * (xt[i] - x[i]))
				out += float64((dn[i] - x[i]) * (dn[i] - x[i]))
			}
		}
		return in / out
	}
	g16, g48 := gain(16, 16), gain(48, 40)
	t.Logf("denoising MSE gain at σ 0.2: %.2f at the training size 16×16, %.2f at 48×40", g16, g48)
	if !(g16 > 3) || !(g48 > 3) || g48 < 0.7*g16 {
		t.Fatalf("gain %.2f at 16×16, %.2f at 48×40", g16, g48)
	}
}

// TestEMTrainsOnCrops: an EM run whose M-step trains on 8×8 crops of 16×16
// observations samples and scores at 16×16 with the same weights, and its
// checkpoint says what it trained on.
func TestEMTrainsOnCrops(t *testing.T) {
	if testing.Short() {
		t.Skip("trains a network")
	}
	obs := emObservations(t, 30, 16, 2, 3, 0.02, 11)
	opt := emTestOptions(t.TempDir(), 2)
	opt.Train.Steps, opt.Train.CropRows, opt.Train.CropCols, opt.Train.Scales = 150, 8, 8, []float64{1, 0.75}
	opt.Guard.Disabled = true
	recs, err := RunEM(context.Background(), obs[:26], obs[26:], opt)
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range recs[1:] {
		if r.Validation.N != 4 || !(r.Validation.PSNR > 5) || r.MStepSteps != 150 {
			t.Fatalf("lap %d: %+v", r.Lap, r)
		}
	}
	_, info, err := priors.LoadPrior(filepath.Join(opt.Dir, LapCheckpoint(2)))
	if err != nil || info.Provenance.Crops != "8×8 crops at pixel scales [1 0.75]" {
		t.Fatalf("lap 2 checkpoint: %v %+v", err, info)
	}
}
