package retrain

import (
	"fmt"

	"github.com/kspaced/kspaced/priors"
)

// EM observations share one matrix (EMOptions.Network's Rows×Cols), while
// the M-step may train on crops (TrainOptions.CropRows×CropCols); the same
// weights serve both sizes (UNet.AtSize).

// atObservations is d at the observations' size.
func atObservations(d priors.Denoiser, opt EMOptions) (priors.Denoiser, error) {
	return priors.ForSize(d, opt.Network.Rows, opt.Network.Cols)
}

// TrainingNet is u at the size the M-step trains at: u itself, or a view
// sharing its weights at the crop size, which must divide by the stride.
func TrainingNet(u *priors.UNet, to priors.TrainOptions) (*priors.UNet, error) {
	if to.CropRows <= 0 && to.CropCols <= 0 {
		return u, nil
	}
	s := u.Config().Stride()
	if to.CropRows%s != 0 || to.CropCols%s != 0 {
		return nil, fmt.Errorf("em: crop %d×%d must divide by the network's stride %d", to.CropRows, to.CropCols, s)
	}
	d, err := u.AtSize(to.CropRows, to.CropCols)
	if err != nil {
		return nil, err
	}
	v, ok := d.(*priors.UNet)
	if !ok {
		return nil, fmt.Errorf("em: crop %d×%d is not a native size of the network", to.CropRows, to.CropCols)
	}
	return v, nil
}
