package priors

import "fmt"

// Networks names the denoiser architectures Network builds; configs keeps
// the same list for retrain.network (TestNetworksMatchConfigs).
var Networks = []string{"tiny", "small", "small-unshuffle"}

// Network is the denoiser architecture called name for rows×cols complex
// images, checked.
func Network(name string, rows, cols int) (UNetConfig, error) {
	var cfg UNetConfig
	switch name {
	case "tiny":
		cfg = UNetConfig{Channels: 2, Rows: rows, Cols: cols, Widths: []int{16, 32}, Blocks: 1,
			Heads: 1, EmbedDim: 32, EmbedMaxPeriod: 1000, Unshuffle: 1, Groups: 4}
	case "small":
		cfg = SmallUNet(rows, cols)
	case "small-unshuffle":
		cfg = SmallUnshuffleUNet(rows, cols)
	default:
		return cfg, fmt.Errorf("unknown network %q (want one of %v)", name, Networks)
	}
	if err := cfg.Validate(); err != nil {
		return cfg, fmt.Errorf("network %s for %d×%d images: %w", name, rows, cols, err)
	}
	return cfg, nil
}

// SmallUnshuffleUNet is "small-unshuffle": a 2× pixel-unshuffle stem makes
// it about four times cheaper per pixel than SmallUNet at the same widths,
// fast enough to train on real anatomy on a CPU.
func SmallUnshuffleUNet(rows, cols int) UNetConfig {
	return UNetConfig{Channels: 2, Rows: rows, Cols: cols, Widths: []int{32, 64, 96}, Blocks: 1,
		Attention: []int{2}, Heads: 2, EmbedDim: 64, EmbedMaxPeriod: 1000, Unshuffle: 2, Groups: 8}
}

// Same reports whether c and o describe the same network (an empty and a
// nil Attention list are the same).
func (c UNetConfig) Same(o UNetConfig) bool { return unetSameConfig(c, o) }

// Params is the number of trainable parameters of the network c describes.
func (c UNetConfig) Params() int { return c.ParamCount() }
