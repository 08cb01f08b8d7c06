package dimse

import (
	"context"
	"os"
	"os/exec"
	"testing"

	"github.com/kspaced/kspaced/internal/peers"
)

// BenchmarkStore sends 2 series × 50 slices of 256×256 (100 instances of
// 128 KiB) over one association to storescp (receiving without storing):
// kspaced's SCU beside dcmtk's storescu on the same files, both with
// Nagle's algorithm off (Go's default; TCP_NODELAY=1 for dcmtk).
func BenchmarkStore(b *testing.B) {
	scp := peers.StartStoreSCP(b, "BENCH", "--ignore")
	var files []string
	var insts []Instance
	var bytes int64
	for _, r := range peers.SeriesSized(b, b.TempDir(), 50, 256, 256) {
		for _, f := range r.Files {
			in, err := ReadInstance(f)
			if err != nil {
				b.Fatal(err)
			}
			files = append(files, f)
			insts = append(insts, in)
			bytes += in.Size
		}
	}
	host, port := "127.0.0.1", scp.Addr[len("127.0.0.1:"):]
	b.Run("kspaced", func(b *testing.B) {
		b.SetBytes(bytes)
		ctx := context.Background()
		pcs, _ := ContextsFor(insts)
		for b.Loop() {
			a, err := Connect(ctx, Peer{Addr: scp.Addr, CalledAE: "BENCH", CallingAE: "KSPACED"}, pcs)
			if err != nil {
				b.Fatal(err)
			}
			for _, in := range insts {
				if err := a.Store(ctx, in); err != nil {
					b.Fatal(err)
				}
			}
			if err := a.Release(ctx); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("storescu", func(b *testing.B) {
		bin := peers.Need(b, "storescu")
		b.SetBytes(bytes)
		for b.Loop() {
			cmd := exec.Command(bin, append([]string{"-aet", "KSPACED", "-aec", "BENCH", host, port}, files...)...)
			cmd.Env = append(os.Environ(), "TCP_NODELAY=1")
			if out, err := cmd.CombinedOutput(); err != nil {
				b.Fatalf("%v: %s", err, out)
			}
		}
	})
}
