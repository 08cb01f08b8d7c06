package dicomio_test

import (
	"fmt"
	"log"
	"os"
	"path/filepath"
	"time"

	"github.com/kspaced/kspaced/dicomio"
)

// A reconstruction written back into the study it came from, or into a new
// study when the k-space arrived without DICOM.
func ExampleWriteScan() {
	out, _ := os.MkdirTemp("", "kspaced-example")
	defer os.RemoveAll(out)

	// The job's DICOM files (none here): a bad file is a FileError, never
	// a failure of the rest.
	studies, fileErrs := dicomio.ReadStudies()
	for _, e := range fileErrs {
		log.Printf("skipping %s: %v", e.Path, e.Err)
	}
	var study dicomio.Study
	var source *dicomio.Series
	if len(studies) > 0 {
		study, source = studies[0].Study, studies[0].Series[0]
	} else {
		var err error
		study, err = dicomio.NewStudy(dicomio.Patient{Name: "Doe^Jane", ID: "123"}, "knee", "", time.Now())
		if err != nil {
			log.Fatal(err)
		}
	}

	const slices, rows, cols = 2, 8, 8
	mean := make([]float32, slices*rows*cols) // posterior mean magnitude
	std := make([]float32, len(mean))         // posterior standard deviation
	for i := range mean {
		mean[i], std[i] = float32(i)*1e-3, 1e-4
	}
	scale := dicomio.DisplayScale(mean) // one scale for both keeps them comparable
	series := []dicomio.OutputSeries{
		{Kind: dicomio.KindMean, Method: "MMPS", Prior: "knee-em8", Images: mean, Slices: slices, Rows: rows, Cols: cols, Source: source, Scale: scale},
		{Kind: dicomio.KindStd, Method: "MMPS", Prior: "knee-em8", Images: std, Slices: slices, Rows: rows, Cols: cols, Source: source, Scale: scale},
	}
	refs, err := dicomio.WriteScan(filepath.Join(out, "dicom"), study, series, dicomio.WriteOptions{})
	if err != nil {
		log.Fatal(err)
	}
	pngs, err := dicomio.WritePreviews(filepath.Join(out, "previews"), mean, mean, std, slices, rows, cols)
	if err != nil {
		log.Fatal(err)
	}
	for _, r := range refs {
		fmt.Printf("%q: series %d, %d files\n", r.Description, r.Number, len(r.Files))
	}
	fmt.Println(len(pngs), "previews")
	// Output:
	// "kspaced MMPS mean": series 9001, 2 files
	// "kspaced MMPS std": series 9002, 2 files
	// 2 previews
}
