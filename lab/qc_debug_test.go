package lab

import (
	"context"
	"fmt"
	"math/rand/v2"
	"os"
	"testing"

	"github.com/kspaced/kspaced/configs"
	"github.com/kspaced/kspaced/mri"
	"github.com/kspaced/kspaced/mri/simulate"
	"github.com/kspaced/kspaced/pipeline"
)

func TestQCDebugLines(t *testing.T) {
	if os.Getenv("KSPACED_QC_DEBUG") != "1" {
		t.Skip()
	}
	vol, _ := simulate.ReadNIfTI(simulate.Volumes["ch2"])
	vol2, _ := simulate.ReadNIfTI(simulate.Volumes["ch2better"])
	opt := QCOptions{Recon: configs.Default().Recon, Accelerations: []float64{4}, PerVolume: 1}
	scans, err := brainScans(opt, map[string]*simulate.Volume{"ch2": vol, "ch2better": vol2}, 0)
	if err != nil {
		t.Fatal(err)
	}
	b := scans[0]
	for _, cl := range []string{"clean", "motion", "coils"} {
		sc := cloneScan(b.scan)
		if cl == "motion" {
			motion(sc, rand.New(rand.NewPCG(1, 2)))
		}
		p, _ := pipeline.Prepare(context.Background(), sc, opt.Recon.CoilMaps)
		if cl == "coils" {
			p.Maps = shiftMaps(p.Maps, 8, 128, 128, 8, 8)
			p.Op = mri.NewSENSE(p.Maps, 8, 128, 128, sc.Mask)
		}
		x, _, _, _ := pipeline.ReconstructClassical(context.Background(), p, &opt.Recon)
		ax := make([]complex64, 8*128*128)
		p.Op.Forward(ax, x)
		fmt.Println("==", cl, p.NoiseVar)
		for c := 0; c < 128; c++ {
			if sc.Mask[c] == 0 {
				continue
			}
			var e, d float64
			for co := 0; co < 8; co++ {
				for r := 0; r < 128; r++ {
					i := co*128*128 + r*128 + c
					y := complex128(sc.KSpace[i])
					dd := y - complex128(ax[i])
					e += real(dd)*real(dd) + imag(dd)*imag(dd)
					d += real(y)*real(y) + imag(y)*imag(y)
				}
			}
			fmt.Printf("%d e %.2f d %.1f | ", c, e/1024/p.NoiseVar, d/1024/p.NoiseVar)
		}
		fmt.Println()
	}
}
