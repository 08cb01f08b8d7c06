package lab

import (
	"context"
	"fmt"
	"io"
	"path/filepath"

	"github.com/kspaced/kspaced/configs"
	"github.com/kspaced/kspaced/priors"
	"github.com/kspaced/kspaced/retrain"
)

// CleanReferenceOptions name an EM run and the budget of its clean-image
// reference (issue 14: how close does EM from corrupted scans get to the same
// network trained on the clean images?).
type CleanReferenceOptions struct {
	Run    string          // EM run folder: laps.json, lap-NN.safetensors
	Data   []string        // the k-space EM read, with NAME_truth.npy companions
	Config *configs.Config // the run's recipe (retrain section, recon.coil_maps)
	Lap    int             // match the M-step steps of EM laps 1…Lap
	Out    string          // the reference checkpoint; Out.train resumes it
	// From, when set, is an earlier reference of the same run (a lower Lap):
	// training continues from its weights for the steps it lacks, as EM's
	// M-steps continue from the previous lap, instead of from scratch.
	From     string
	Progress io.Writer
}

// CleanReference trains lap Lap's network from scratch on the truth images of
// the EM run's training scans (its validation scans held out as retrain holds
// them out), with the recipe's optimiser, crops and scales, for as many steps
// as EM's M-steps took through lap Lap (or the steps From lacks of those,
// from From's weights). It resumes from Out.train and returns the step count.
func CleanReference(ctx context.Context, opt CleanReferenceOptions) (int, error) {
	laps, err := retrain.ReadLaps(opt.Run)
	if err != nil {
		return 0, err
	}
	if opt.Lap < 1 || opt.Lap >= len(laps) {
		return 0, fmt.Errorf("clean reference: lap %d is not a network lap of %s (%d laps)", opt.Lap, opt.Run, len(laps))
	}
	steps := 0
	for _, r := range laps[1 : opt.Lap+1] {
		steps += r.MStepSteps
	}
	u, _, err := priors.LoadUNet(filepath.Join(opt.Run, retrain.LapCheckpoint(opt.Lap)))
	if err != nil {
		return 0, err
	}
	rc := opt.Config.Retrain
	all, err := retrain.LoadObservations(ctx, opt.Data, opt.Config.Recon.CoilMaps, nil)
	if err != nil {
		return 0, err
	}
	train, _ := retrain.SplitObservations(all.Obs, rc.ValFraction, rc.Seed)
	var start *priors.UNet
	done := 0
	if opt.From != "" {
		from, meta, err := priors.LoadUNet(opt.From)
		if err != nil {
			return 0, err
		}
		if !from.Config().Same(u.Config()) || meta.Provenance.Steps <= 0 || meta.Provenance.Steps >= steps {
			return 0, fmt.Errorf("clean reference: %s (%d steps, %+v) cannot continue to lap %d's %d steps of %+v",
				opt.From, meta.Provenance.Steps, from.Config(), opt.Lap, steps, u.Config())
		}
		start, done = from, meta.Provenance.Steps
	}
	return steps, trainClean(ctx, train, u.Config(), start, done, rc, steps, opt.Out, opt.Progress)
}
