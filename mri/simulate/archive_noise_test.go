package simulate

import (
	"fmt"
	"math"
	"os"
	"path/filepath"
	"sort"
	"testing"

	"github.com/kspaced/kspaced/mri"
	"github.com/kspaced/kspaced/mri/kspaceio"
)

// TestArchiveNoiseEstimates reports estimated/true σ over a simulated
// archive (KSPACED_ARCHIVE=DIR/train written by `kspaced simulate archive`,
// whose files record the true σ in their "noise" attribute).
func TestArchiveNoiseEstimates(t *testing.T) {
	t.Parallel()
	dir := os.Getenv("KSPACED_ARCHIVE")
	if dir == "" {
		t.Skip("set KSPACED_ARCHIVE to an archive's train folder")
	}
	files, _ := filepath.Glob(filepath.Join(dir, "*.h5"))
	var r []float64
	outside := map[string]int{}
	for _, f := range files {
		v, err := kspaceio.Read(f)
		if err != nil {
			t.Fatal(err)
		}
		s := v.Slices[0]
		var sigma float64
		if _, err := fmt.Sscan(fmt.Sprint(v.Attrs["noise"]), &sigma); err != nil || !(sigma > 0) {
			t.Fatalf("%s: no true noise level recorded", f)
		}
		e, err := mri.EstimateNoise(&s)
		if err != nil {
			outside["refused"]++
			continue
		}
		q := math.Sqrt(e.Mean()) / sigma
		r = append(r, q)
		if math.Abs(q-1) > 0.2 {
			outside[fmt.Sprint(v.Attrs["mask"])]++
		}
	}
	if len(r) == 0 {
		t.Fatalf("no estimates from %d files", len(files))
	}
	sort.Float64s(r)
	t.Logf("%d files: estimated/true σ min %.3f, median %.3f, max %.3f; outside ±20 %% (by mask): %v", len(files), r[0], r[len(r)/2], r[len(r)-1], outside)
}
