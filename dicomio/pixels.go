package dicomio

import (
	"encoding/binary"
	"fmt"
	"math/bits"
	"strconv"

	"github.com/suyashkumar/dicom/pkg/tag"
)

// pixelFormat is the Image Pixel module of one file, checked against the
// length of its Pixel Data.
type pixelFormat struct {
	rows, cols, frames, samples     int
	bitsAllocated, bitsStored, high int
	signed, planar                  bool
}

// pixelFormatOf reads and checks the pixel description: Pixel Data must hold
// exactly rows × cols × frames × samples × bytes (plus at most one padding
// byte), computed without overflow, before anything is allocated from it.
func pixelFormatOf(es elems, pixelLen int) (pixelFormat, error) {
	var pf pixelFormat
	need := func(t tag.Tag, name string) (int, error) {
		v, ok := es.int(t)
		if !ok {
			return 0, fmt.Errorf("%w: missing or unreadable %s", ErrUnsupportedPixels, name)
		}
		return v, nil
	}
	var err error
	if pf.rows, err = need(tag.Rows, "Rows"); err != nil {
		return pf, err
	}
	if pf.cols, err = need(tag.Columns, "Columns"); err != nil {
		return pf, err
	}
	if pf.bitsAllocated, err = need(tag.BitsAllocated, "BitsAllocated"); err != nil {
		return pf, err
	}
	pf.samples = 1
	if v, ok := es.int(tag.SamplesPerPixel); ok {
		pf.samples = v
	}
	pf.frames = 1
	if es.find(tag.NumberOfFrames) != nil {
		if pf.frames, err = need(tag.NumberOfFrames, "NumberOfFrames"); err != nil {
			return pf, err
		}
	}
	pf.bitsStored = pf.bitsAllocated
	if v, ok := es.int(tag.BitsStored); ok {
		pf.bitsStored = v
	}
	pf.high = pf.bitsStored - 1
	if v, ok := es.int(tag.HighBit); ok {
		pf.high = v
	}
	rep, _ := es.int(tag.PixelRepresentation)
	pf.signed = rep == 1
	plan, _ := es.int(tag.PlanarConfiguration)
	pf.planar = plan == 1 && pf.samples > 1

	switch {
	case pf.rows < 1 || pf.cols < 1 || pf.rows > 65535 || pf.cols > 65535:
		return pf, fmt.Errorf("%w: %d×%d pixels", ErrUnsupportedPixels, pf.rows, pf.cols)
	case pf.frames < 1:
		return pf, fmt.Errorf("%w: %d frames", ErrUnsupportedPixels, pf.frames)
	case pf.samples != 1 && pf.samples != 3:
		return pf, fmt.Errorf("%w: %d samples per pixel", ErrUnsupportedPixels, pf.samples)
	case pf.bitsAllocated != 8 && pf.bitsAllocated != 16 && pf.bitsAllocated != 32:
		return pf, fmt.Errorf("%w: %d bits allocated", ErrUnsupportedPixels, pf.bitsAllocated)
	case pf.bitsStored < 1 || pf.bitsStored > pf.bitsAllocated || pf.high >= pf.bitsAllocated || pf.high+1 < pf.bitsStored:
		return pf, fmt.Errorf("%w: bits stored %d, high bit %d in %d allocated", ErrUnsupportedPixels, pf.bitsStored, pf.high, pf.bitsAllocated)
	}
	switch pi := es.str(tag.PhotometricInterpretation); pi {
	case "MONOCHROME1", "MONOCHROME2", "PALETTE COLOR", "":
		if pf.samples != 1 {
			return pf, fmt.Errorf("%w: %s with %d samples per pixel", ErrUnsupportedPixels, pi, pf.samples)
		}
	case "RGB", "YBR_FULL":
		if pf.samples != 3 {
			return pf, fmt.Errorf("%w: %s with %d samples per pixel", ErrUnsupportedPixels, pi, pf.samples)
		}
	default:
		return pf, fmt.Errorf("%w: photometric interpretation %s", ErrUnsupportedPixels, quoteCS(pi))
	}
	// Multiply in 128 bits: a header can claim 2^31 frames of 65535² pixels,
	// and a product truncated to 32 bits (as the library computes it) can
	// match a short Pixel Data length.
	want, overflow := uint64(pf.bitsAllocated/8), false
	for _, f := range []int{pf.rows, pf.cols, pf.samples, pf.frames} {
		hi, lo := bits.Mul64(want, uint64(f))
		want, overflow = lo, overflow || hi != 0
	}
	if overflow || want != uint64(pixelLen) && !(want+1 == uint64(pixelLen) && pixelLen%2 == 0) {
		need := strconv.FormatUint(want, 10)
		if overflow {
			need = "more than 2^64"
		}
		return pf, fmt.Errorf("%w: pixel data has %d bytes, %d×%d pixels × %d frames × %d samples × %d bits need %s",
			ErrMalformed, pixelLen, pf.rows, pf.cols, pf.frames, pf.samples, pf.bitsAllocated, need)
	}
	return pf, nil
}

// decodeNative converts native pixel data to rescaled float32 in
// frame, row, column, sample order, keeping only the stored bits and
// sign-extending them when the representation is signed. frames holds one
// entry per frame, or a single entry for all.
func decodeNative(dst []float32, src []byte, bo binary.ByteOrder, pf pixelFormat, frames []frame) {
	bytesPer := pf.bitsAllocated / 8
	c := sampleCodec{
		shift:     uint(pf.high + 1 - pf.bitsStored),
		mask:      uint32(uint64(1)<<uint(pf.bitsStored) - 1),
		signShift: uint(32 - pf.bitsStored),
		signed:    pf.signed,
	}
	little := bo == binary.ByteOrder(binary.LittleEndian)
	perFrame := pf.rows * pf.cols * pf.samples
	plane := pf.rows * pf.cols
	for f := 0; f < pf.frames; f++ {
		fi := frames[min(f, len(frames)-1)] // one entry when all frames are alike
		c.slope, c.icpt = fi.slope, fi.intercept
		out := dst[f*perFrame : (f+1)*perFrame]
		in := src[f*perFrame*bytesPer : (f+1)*perFrame*bytesPer]
		if pf.planar {
			// Stored plane by plane: sample s of pixel p is at s·plane+p.
			for i := 0; i < perFrame; i++ {
				var raw uint32
				switch bytesPer {
				case 1:
					raw = uint32(in[i])
				case 2:
					raw = uint32(bo.Uint16(in[2*i:]))
				default:
					raw = bo.Uint32(in[4*i:])
				}
				out[(i%plane)*pf.samples+i/plane] = c.value(raw)
			}
			continue
		}
		// One loop per layout keeps byte-order dispatch out of the inner loop.
		switch {
		case bytesPer == 1:
			for i, b := range in {
				out[i] = c.value(uint32(b))
			}
		case bytesPer == 2 && little:
			for i := range out {
				out[i] = c.value(uint32(in[2*i]) | uint32(in[2*i+1])<<8)
			}
		case bytesPer == 2:
			for i := range out {
				out[i] = c.value(uint32(in[2*i])<<8 | uint32(in[2*i+1]))
			}
		case little:
			for i := range out {
				out[i] = c.value(binary.LittleEndian.Uint32(in[4*i:]))
			}
		default:
			for i := range out {
				out[i] = c.value(binary.BigEndian.Uint32(in[4*i:]))
			}
		}
	}
}

// sampleCodec turns one stored sample into its rescaled value.
type sampleCodec struct {
	shift, signShift uint
	mask             uint32
	signed           bool
	slope, icpt      float64
}

func (c *sampleCodec) value(raw uint32) float32 {
	raw = (raw >> c.shift) & c.mask
	var v float64
	if c.signed {
		v = float64(int32(raw<<c.signShift) >> c.signShift)
	} else {
		v = float64(raw)
	}
	return float32(v*c.slope + c.icpt)
}
