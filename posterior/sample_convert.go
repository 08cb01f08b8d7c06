package posterior

import "fmt"

// ComplexToChannels writes complex images src ([n][pixels]) into the
// denoiser's two-channel layout dst ([n][2][pixels]: real plane, then
// imaginary plane). len(dst) must be 2·len(src).
func ComplexToChannels(dst []float32, src []complex64, pixels int) error {
	if pixels < 1 || len(src)%pixels != 0 || len(dst) != 2*len(src) {
		return fmt.Errorf("complex to channels: %d complex and %d real values for %d-pixel images", len(src), len(dst), pixels)
	}
	toChannels(dst, src, pixels)
	return nil
}

// ChannelsToComplex is the inverse of ComplexToChannels.
func ChannelsToComplex(dst []complex64, src []float32, pixels int) error {
	if pixels < 1 || len(dst)%pixels != 0 || len(src) != 2*len(dst) {
		return fmt.Errorf("channels to complex: %d real and %d complex values for %d-pixel images", len(src), len(dst), pixels)
	}
	fromChannels(dst, src, pixels)
	return nil
}

func toChannels(dst []float32, src []complex64, pixels int) {
	for b := 0; b < len(src); b += pixels {
		re, im := dst[2*b:2*b+pixels], dst[2*b+pixels:2*b+2*pixels]
		for i, v := range src[b : b+pixels] {
			re[i], im[i] = real(v), imag(v)
		}
	}
}

func fromChannels(dst []complex64, src []float32, pixels int) {
	for b := 0; b < len(dst); b += pixels {
		re, im := src[2*b:2*b+pixels], src[2*b+pixels:2*b+2*pixels]
		d := dst[b : b+pixels]
		for i := range d {
			d[i] = complex(re[i], im[i])
		}
	}
}
