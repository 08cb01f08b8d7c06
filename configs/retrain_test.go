package configs

import (
	"strings"
	"testing"
)

func TestRetrainDefaultsAndOverrides(t *testing.T) {
	r := Default().Retrain
	if r.Laps != 8 || r.Rank != 16 || r.Network != "small-unshuffle" || r.Optimizer != "adam" || r.ValFraction != 0.1 || r.CGIterations != 2 {
		t.Fatalf("retrain defaults not decoded: %+v", r)
	}
	c, err := Parse([]byte("retrain:\n  laps: 3\n  network: tiny\n"), "r.yaml")
	if err != nil {
		t.Fatal(err)
	}
	if c.Retrain.Laps != 3 || c.Retrain.Network != "tiny" || c.Retrain.Rank != 16 {
		t.Fatalf("override: %+v", c.Retrain)
	}
}

func TestRetrainValidation(t *testing.T) {
	cases := map[string]string{
		"retrain:\n  laps: 100\n":           "retrain.laps",
		"retrain:\n  rank: -1\n":            "retrain.rank",
		"retrain:\n  steps: 1\n":            "retrain.steps",
		"retrain:\n  cg_iterations: 0\n":    "retrain.cg_iterations",
		"retrain:\n  optimizer: sgd\n":      "retrain.optimizer",
		"retrain:\n  learning_rate: 0\n":    "retrain.learning_rate",
		"retrain:\n  ema_decay: 1\n":        "retrain.ema_decay",
		"retrain:\n  network: huge\n":       "retrain.network",
		"retrain:\n  val_fraction: 1\n":     "retrain.val_fraction",
		"retrain:\n  batch_size: 0\n":       "retrain.batch_size",
		"retrain:\n  epochs: -2\n":          "retrain.epochs",
		"retrain:\n  eval_samples: 0\n":     "retrain.eval_samples",
		"retrain:\n  eval_steps: 1\n":       "retrain.eval_steps",
		"retrain:\n  lapz: 2\n":             `unknown key "lapz" in retrain`,
		"retrain:\n  train_steps: many\n":   "line 2",
		"retrain:\n  gaussian_samples: 0\n": "retrain.gaussian_samples",
	}
	for in, want := range cases {
		_, err := Parse([]byte(in), "t.yaml")
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%q: error %v, want mention of %q", in, err, want)
		}
	}
}
