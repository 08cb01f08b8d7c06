package configs

// Retrain configures `kspaced retrain`: expectation-maximisation of a
// diffusion prior from undersampled scans.
type Retrain struct {
	Laps            int     `yaml:"laps"`
	GaussianLaps    int     `yaml:"gaussian_laps"`
	Rank            int     `yaml:"rank"`
	GaussianSamples int     `yaml:"gaussian_samples"`
	Steps           int     `yaml:"steps"`
	CGIterations    int     `yaml:"cg_iterations"`
	TrainSteps      int     `yaml:"train_steps"`
	Epochs          int     `yaml:"epochs"`
	BatchSize       int     `yaml:"batch_size"`
	Optimizer       string  `yaml:"optimizer"`
	LearningRate    float64 `yaml:"learning_rate"`
	WarmupSteps     int     `yaml:"warmup_steps"`
	EMADecay        float64 `yaml:"ema_decay"`
	Network         string  `yaml:"network"`
	ValFraction     float64 `yaml:"val_fraction"`
	EvalSamples     int     `yaml:"eval_samples"`
	// Sampler steps of the validation (0: steps, the E-step's); fixed, it
	// keeps laps comparable when the E-step's steps change mid-run.
	EvalSteps int    `yaml:"eval_steps"`
	Workers   int    `yaml:"workers"`
	Seed      uint64 `yaml:"seed"`
	// M-step steps of lap 1 (a network from scratch); 0: train_steps.
	FirstLapSteps int `yaml:"first_lap_steps"`
	// Posterior samples per scan drawn by each E-step.
	SamplesPerScan int `yaml:"samples_per_scan"`
	// M-step crops (0: whole images) and pixel scales (default {1}).
	Crop   int       `yaml:"crop"`
	Scales []float64 `yaml:"scales"`
	// The M-step guard: retries of a lap whose loss or validation jumps, each
	// at guard_lr_factor × the learning rate; 0 retries disables it
	// (retrain.GuardOptions holds the jump thresholds).
	GuardRetries  int     `yaml:"guard_retries"`
	GuardLRFactor float64 `yaml:"guard_lr_factor"`
}

// Networks lists the denoiser architectures retrain can build.
var Networks = []string{"tiny", "small", "small-unshuffle"}

func (r Retrain) validate(v *validator) {
	v.rangeI("retrain.laps", r.Laps, 0, 99)
	v.rangeI("retrain.gaussian_laps", r.GaussianLaps, 0, 1000)
	v.rangeI("retrain.rank", r.Rank, 0, 1024)
	v.rangeI("retrain.gaussian_samples", r.GaussianSamples, 1, 64)
	v.rangeI("retrain.steps", r.Steps, 2, 10000)
	v.rangeI("retrain.cg_iterations", r.CGIterations, 1, 100)
	v.rangeI("retrain.train_steps", r.TrainSteps, 1, 10000000)
	v.rangeI("retrain.epochs", r.Epochs, 0, 100000)
	v.rangeI("retrain.batch_size", r.BatchSize, 1, 4096)
	v.oneOf("retrain.optimizer", r.Optimizer, "adam")
	v.check(r.LearningRate > 0 && r.LearningRate <= 1, "retrain.learning_rate = %g, want in (0, 1]", r.LearningRate)
	v.rangeI("retrain.warmup_steps", r.WarmupSteps, 0, 10000000)
	v.check(r.EMADecay >= 0 && r.EMADecay < 1, "retrain.ema_decay = %g, want in [0, 1)", r.EMADecay)
	v.oneOf("retrain.network", r.Network, Networks...)
	v.check(r.ValFraction >= 0 && r.ValFraction < 1, "retrain.val_fraction = %g, want in [0, 1)", r.ValFraction)
	v.rangeI("retrain.eval_samples", r.EvalSamples, 1, 1024)
	if r.EvalSteps != 0 {
		v.rangeI("retrain.eval_steps", r.EvalSteps, 2, 10000)
	}
	v.rangeI("retrain.workers", r.Workers, 0, 1024)
	v.rangeI("retrain.crop", r.Crop, 0, maxDim)
	v.rangeI("retrain.samples_per_scan", r.SamplesPerScan, 1, 64)
	v.rangeI("retrain.first_lap_steps", r.FirstLapSteps, 0, 10000000)
	for _, sc := range r.Scales {
		v.check(sc >= 0.125 && sc <= 8, "retrain.scales: %g, want in [0.125, 8]", sc)
	}
	v.rangeI("retrain.guard_retries", r.GuardRetries, 0, 10)
	v.check(r.GuardLRFactor > 0 && r.GuardLRFactor < 1, "retrain.guard_lr_factor = %g, want in (0, 1)", r.GuardLRFactor)
}
