package priors

import (
	"bytes"
	"context"
	"math"
	"math/rand/v2"
	"path/filepath"
	"strings"
	"testing"
)

// trainSynthetic makes n complex h×w images: a few Gaussian blobs of random
// size and height under a smooth random phase, as (real, imag) channels.
func trainSynthetic(n, h, w int, seed uint64) *SliceDataset {
	r := rand.New(rand.NewPCG(seed, 99))
	d := &SliceDataset{C: 2, H: h, W: w, Data: make([]float32, n*2*h*w)}
	for i := 0; i < n; i++ {
		img := d.Data[i*2*h*w : (i+1)*2*h*w]
		ph0, phy, phx := r.Float64()*2*math.Pi, r.NormFloat64()*0.2, r.NormFloat64()*0.2
		blobs := 1 + r.IntN(3)
		type blob struct{ cy, cx, s, a float64 }
		bs := make([]blob, blobs)
		for k := range bs {
			bs[k] = blob{r.Float64() * float64(h), r.Float64() * float64(w), 1.5 + 3*r.Float64(), 0.5 + r.Float64()}
		}
		for y := 0; y < h; y++ {
			for x := 0; x < w; x++ {
				m := 0.0
				for _, b := range bs {
					dy, dx := float64(y)-b.cy, float64(x)-b.cx
					m += b.a * math.Exp(-(dy*dy+dx*dx)/(2*b.s*b.s))
				}
				ph := ph0 + phy*float64(y) + phx*float64(x)
				img[y*w+x] = float32(m * math.Cos(ph))
				img[h*w+y*w+x] = float32(m * math.Sin(ph))
			}
		}
	}
	return d
}

func trainTinyNet(t *testing.T, seed uint64) *UNet {
	t.Helper()
	u, err := NewUNet(UNetConfig{Channels: 2, Rows: 16, Cols: 16, Widths: []int{16, 32}, Blocks: 1,
		Attention: []int{1}, Heads: 2, EmbedDim: 32, EmbedMaxPeriod: 1000, Unshuffle: 1, Groups: 8}, seed)
	if err != nil {
		t.Fatal(err)
	}
	return u
}

func trainWeights(u *UNet) []float32 {
	var all []float32
	for _, p := range u.Params() {
		v := make([]float32, p.Len())
		u.be.Download(v, p.Value)
		all = append(all, v...)
	}
	return all
}

// denoiseMSE is the mean squared error of d(x + σz, σ) against x over ds.
func denoiseMSE(t *testing.T, d Denoiser, ds Dataset, sigma float64, seed uint64) (net, identity float64) {
	t.Helper()
	c, h, w := ds.Shape()
	per, n := c*h*w, ds.Len()
	r := rand.New(rand.NewPCG(seed, 5))
	x, xt, out := make([]float32, n*per), make([]float32, n*per), make([]float32, n*per)
	sig := make([]float32, n)
	for i := 0; i < n; i++ {
		if err := ds.Image(x[i*per:(i+1)*per], i); err != nil {
			t.Fatal(err)
		}
		sig[i] = float32(sigma)
	}
	for k := range x {
		xt[k] = x[k] + float32(sigma*r.NormFloat64())
	}
	if err := d.Denoise(out, xt, sig); err != nil {
		t.Fatal(err)
	}
	for k := range x {
		net += (float64(out[k]) - float64(x[k])) * (float64(out[k]) - float64(x[k]))
		identity += (float64(xt[k]) - float64(x[k])) * (float64(xt[k]) - float64(x[k]))
	}
	return net / float64(len(x)), identity / float64(len(x))
}

// The learning smoke test: a tiny network trained for a few hundred steps
// lowers its loss and denoises held-out images better than doing nothing.
func TestTrainLearns(t *testing.T) {
	data := trainSynthetic(64, 16, 16, 1)
	held := trainSynthetic(16, 16, 16, 2)
	u := trainTinyNet(t, 1)
	var bar bytes.Buffer
	st, err := Train(context.Background(), u, data, TrainOptions{Steps: 160, BatchSize: 8, LR: 2e-3, Seed: 3,
		ValFraction: 0.125, WarmupSteps: 20}, &bar)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("epoch losses %.3f", st.Loss)
	t.Logf("validation %.3f", st.ValLoss)
	if st.Steps != 160 || st.TrainSize != 56 || st.ValSize != 8 || len(st.Loss) != 160/7 || len(st.ValLoss) != len(st.Loss) {
		t.Fatalf("stats %+v", st)
	}
	first, last := st.Loss[0], st.Loss[len(st.Loss)-1]
	if !(last < 0.6*first) {
		t.Errorf("training loss went from %.3f to %.3f", first, last)
	}
	if !(st.ValLoss[len(st.ValLoss)-1] < st.ValLoss[0]) {
		t.Errorf("validation loss went from %.3f to %.3f", st.ValLoss[0], st.ValLoss[len(st.ValLoss)-1])
	}
	for _, s := range []float64{0.2, 1} {
		net, id := denoiseMSE(t, u, held, s, 7)
		t.Logf("σ=%g: network MSE %.4f, identity %.4f", s, net, id)
		if !(net < 0.5*id) {
			t.Errorf("σ=%g: network MSE %.4f is not well below identity %.4f", s, net, id)
		}
	}
	if !strings.Contains(bar.String(), "160/160") {
		t.Errorf("progress output %q lacks the step count", bar.String())
	}
}

func TestTrainReproducible(t *testing.T) {
	data := trainSynthetic(12, 16, 16, 4)
	run := func(seed uint64) []float32 {
		u := trainTinyNet(t, 5)
		if _, err := Train(context.Background(), u, data, TrainOptions{Steps: 6, BatchSize: 4, Seed: seed}, nil); err != nil {
			t.Fatal(err)
		}
		return trainWeights(u)
	}
	a, b, c := run(1), run(1), run(2)
	for i := range a {
		if a[i] != b[i] {
			t.Fatalf("same seed, weight %d differs: %g vs %g", i, a[i], b[i])
		}
	}
	same := true
	for i := range a {
		same = same && a[i] == c[i]
	}
	if same {
		t.Error("different seeds gave identical weights")
	}
}

// Stopping at a checkpoint and resuming (on a differently initialised
// network) must land on exactly the weights of an uninterrupted run.
func TestTrainResumeExact(t *testing.T) {
	data := trainSynthetic(10, 16, 16, 6)
	opt := TrainOptions{Steps: 8, BatchSize: 4, Seed: 9, ValFraction: 0.2, WarmupSteps: 3, ClipNorm: 0.5}
	whole := trainTinyNet(t, 1)
	if _, err := Train(context.Background(), whole, data, opt, nil); err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "ckpt.safetensors")
	first := trainTinyNet(t, 1)
	o1 := opt
	o1.Steps, o1.CheckpointPath = 3, path
	if _, err := Train(context.Background(), first, data, o1, nil); err != nil {
		t.Fatal(err)
	}
	second := trainTinyNet(t, 2)
	o2 := opt
	o2.Resume = path
	st, err := Train(context.Background(), second, data, o2, nil)
	if err != nil {
		t.Fatal(err)
	}
	if st.Steps != 8 {
		t.Fatalf("resumed run ended at step %d", st.Steps)
	}
	a, b := trainWeights(whole), trainWeights(second)
	for i := range a {
		if a[i] != b[i] {
			t.Fatalf("weight %d: %g uninterrupted, %g resumed", i, a[i], b[i])
		}
	}
	// The checkpoint's model weights are the EMA weights the first run kept.
	loaded, meta, err := LoadUNet(path)
	if err != nil {
		t.Fatal(err)
	}
	w1, wl := trainWeights(first), trainWeights(loaded)
	for i := range w1 {
		if w1[i] != wl[i] {
			t.Fatalf("checkpoint weight %d: %g, network kept %g", i, wl[i], w1[i])
		}
	}
	if meta.Provenance.Steps != 3 || meta.Provenance.Seed != 9 || meta.Provenance.Images != 8 || len(meta.Provenance.DataHash) != 64 {
		t.Errorf("provenance %+v", meta.Provenance)
	}

	// Resuming with other data, another seed, or from weights only fails.
	o3 := opt
	o3.Resume = path
	if _, err := Train(context.Background(), trainTinyNet(t, 1), trainSynthetic(10, 16, 16, 7), o3, nil); err == nil || !strings.Contains(err.Error(), "other data") {
		t.Errorf("resume on other data: %v", err)
	}
	o3.Seed = 10
	if _, err := Train(context.Background(), trainTinyNet(t, 1), data, o3, nil); err == nil {
		t.Error("resume with another seed accepted")
	}
	plain := filepath.Join(t.TempDir(), "plain.safetensors")
	if err := whole.Save(plain, CheckpointMeta{}); err != nil {
		t.Fatal(err)
	}
	o4 := opt
	o4.Resume = plain
	if _, err := Train(context.Background(), trainTinyNet(t, 1), data, o4, nil); err == nil || !strings.Contains(err.Error(), "no training state") {
		t.Errorf("resume from weights only: %v", err)
	}
}

func TestTrainRejectsBadOptions(t *testing.T) {
	data := trainSynthetic(4, 16, 16, 1)
	u := trainTinyNet(t, 1)
	ctx := context.Background()
	for name, o := range map[string]TrainOptions{
		"no steps":       {},
		"negative batch": {Steps: 1, BatchSize: -1},
		"NaN lr":         {Steps: 1, LR: math.NaN()},
		"beta1 1":        {Steps: 1, Beta1: 1},
		"val fraction 1": {Steps: 1, ValFraction: 1},
		"bad resume":     {Steps: 1, Resume: "/nonexistent/ckpt"},
	} {
		if _, err := Train(ctx, u, data, o, nil); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
	if _, err := Train(ctx, u, trainSynthetic(4, 8, 8, 1), TrainOptions{Steps: 1}, nil); err == nil {
		t.Error("images of the wrong size accepted")
	}
	cctx, cancel := context.WithCancel(ctx)
	cancel()
	if _, err := Train(cctx, u, data, TrainOptions{Steps: 5}, nil); err == nil {
		t.Error("cancelled context ignored")
	}
}

func TestBeta33Moments(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	const n = 200000
	var s, s2 float64
	for i := 0; i < n; i++ {
		v := beta33(r)
		s += v
		s2 += v * v
	}
	mean, vr := s/n, s2/n-(s/n)*(s/n)
	// Beta(3,3): mean 1/2, variance ab/((a+b)²(a+b+1)) = 9/252.
	if math.Abs(mean-0.5) > 0.003 || math.Abs(vr-9.0/252) > 0.001 {
		t.Errorf("Beta(3,3) draws: mean %.4f, variance %.5f (want 0.5, %.5f)", mean, vr, 9.0/252)
	}
}

func TestFlip(t *testing.T) {
	img := []float32{1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12} // 2 channels of 2×3
	flip(img, 2, 2, 3, true, true)
	want := []float32{6, 5, 4, 3, 2, 1, 12, 11, 10, 9, 8, 7}
	for i := range want {
		if img[i] != want[i] {
			t.Fatalf("flipped %v, want %v", img, want)
		}
	}
}

// BenchmarkTrainStep times one optimiser step of the evidence network at
// batch 16 on 64×64 complex images.
func BenchmarkTrainStep(b *testing.B) {
	u, err := NewUNet(SmallUnshuffleUNet(64, 64), 1)
	if err != nil {
		b.Fatal(err)
	}
	data := trainSynthetic(32, 64, 64, 1)
	t := &trainer{u: u, be: u.be, opt: TrainOptions{Steps: 1, BatchSize: 16, LR: 1e-3, Beta1: 0.9, Beta2: 0.999, AdamEps: 1e-8, EMADecay: 0.999, ClipNorm: 1},
		data: data, per: 2 * 64 * 64, permEpoch: -1}
	t.split()
	t.alloc()
	if _, err := t.trainStep(); err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	for b.Loop() {
		if _, err := t.trainStep(); err != nil {
			b.Fatal(err)
		}
	}
	ug, _ := u.graph(16)
	b.ReportMetric(3*ug.g.FLOPs()/1e9, "GFLOP/step")
	b.ReportMetric(float64(ug.g.Bytes())/(1<<20), "graph-MiB")
	b.ReportMetric(3*ug.g.FLOPs()*float64(b.N)/b.Elapsed().Seconds()/1e9, "GFLOP/s")
}

func TestTrainStepNoAllocs(t *testing.T) {
	u := trainTinyNet(t, 1)
	data := trainSynthetic(8, 16, 16, 1)
	tr := &trainer{u: u, be: u.be, opt: TrainOptions{Steps: 1, BatchSize: 4, LR: 1e-3, Beta1: 0.9, Beta2: 0.999, AdamEps: 1e-8, EMADecay: 0.999, ClipNorm: 1},
		data: data, per: 2 * 16 * 16, permEpoch: -1}
	tr.split()
	tr.alloc()
	for i := 0; i < 3; i++ {
		if _, err := tr.trainStep(); err != nil {
			t.Fatal(err)
		}
	}
	if a := testing.AllocsPerRun(10, func() { _, _ = tr.trainStep() }); a != 0 {
		t.Errorf("a training step allocates %v times", a)
	}
}
