package pipeline

import (
	"fmt"
	"path/filepath"
	"strings"

	"github.com/kspaced/kspaced/configs"
	"github.com/kspaced/kspaced/dicomio"
	"github.com/kspaced/kspaced/mri"
	"github.com/kspaced/kspaced/mri/kspaceio"
)

// images are one volume's reconstructed slices, cropped to the recon matrix.
type images struct {
	slices, rows, cols int
	recon, zeroFilled  []complex64 // [slice][row][col]
	std                []float32   // nil for classical methods
}

func collect(v *kspaceio.Volume, results []*sliceResult) *images {
	rows, cols := v.ImageSize()
	im := &images{slices: len(results), rows: rows, cols: cols}
	for i, r := range results {
		s := &v.Slices[i]
		im.recon = append(im.recon, cropCenter(r.Image, s.Rows, s.Cols, rows, cols)...)
		im.zeroFilled = append(im.zeroFilled, cropCenter(r.ZeroFilled, s.Rows, s.Cols, rows, cols)...)
		if r.Std != nil {
			im.std = append(im.std, cropCenter(r.Std, s.Rows, s.Cols, rows, cols)...)
		}
	}
	return im
}

// cropCenter keeps the centred rows×cols block of a [r][c] image, as the
// readout-oversampling crop of fastMRI and ISMRMRD recon matrices.
func cropCenter[T any](src []T, r, c, rows, cols int) []T {
	if r == rows && c == cols {
		return src
	}
	dst := make([]T, 0, rows*cols)
	r0, c0 := (r-rows)/2, (c-cols)/2
	for i := 0; i < rows; i++ {
		dst = append(dst, src[(r0+i)*c+c0:(r0+i)*c+c0+cols]...)
	}
	return dst
}

// writeOutputs writes what cfg.Output asks for and returns the paths.
// base names the .npy and preview outputs (see outputBases).
func writeOutputs(outDir string, v *kspaceio.Volume, results []*sliceResult, src *sourceStudy, cfg *configs.Config, base string) ([]string, error) {
	im := collect(v, results)
	comments, flagged := sliceComments(results)
	shape := []int{im.rows, im.cols}
	if im.slices > 1 {
		shape = []int{im.slices, im.rows, im.cols}
	}
	var out []string
	if cfg.Output.NPY {
		p := filepath.Join(outDir, base+".npy")
		if err := kspaceio.WriteNPYComplex64(p, shape, im.recon); err != nil {
			return nil, fmt.Errorf("write %s: %w", p, err)
		}
		out = append(out, p)
		if im.std != nil {
			p := filepath.Join(outDir, base+"_std.npy")
			if err := kspaceio.WriteNPYFloat32(p, shape, im.std); err != nil {
				return nil, fmt.Errorf("write %s: %w", p, err)
			}
			out = append(out, p)
		}
	}
	if cfg.Output.DICOM {
		dirs, err := writeDICOM(outDir, v, im, src, cfg, comments, flagged)
		if err != nil {
			return nil, err
		}
		out = append(out, dirs...)
	}
	if cfg.Output.Previews {
		files, err := dicomio.WritePreviewsQC(filepath.Join(outDir, "previews", base), magnitudes(im.zeroFilled),
			magnitudes(im.recon), im.std, im.slices, im.rows, im.cols, comments)
		if err != nil {
			return nil, fmt.Errorf("write previews: %w", err)
		}
		out = append(out, files...)
	}
	return out, nil
}

// baseName is the input's file name without its format extension.
func baseName(path string) string {
	b := filepath.Base(path)
	for _, ext := range []string{".h5", ".hdf5", ".mrd", ".npy", ".cfl", ".hdr"} {
		if strings.HasSuffix(strings.ToLower(b), ext) {
			return b[:len(b)-len(ext)]
		}
	}
	return b
}

func magnitudes(src []complex64) []float32 {
	dst := make([]float32, len(src))
	mri.Magnitude(dst, src)
	return dst
}
