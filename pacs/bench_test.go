package pacs

import (
	"net"
	"os"
	"os/exec"
	"testing"

	"github.com/kspaced/kspaced/internal/peers"
)

// BenchmarkReceive: dcmtk's storescu sends 100 instances of 128 KiB over one
// association to kspaced's listener, which writes and fsyncs each before
// acknowledging it and moves the study into the inbox.
func BenchmarkReceive(b *testing.B) {
	bin := peers.Need(b, "storescu")
	var files []string
	var size int64
	for _, r := range peers.SeriesSized(b, b.TempDir(), 50, 256, 256) {
		for _, f := range r.Files {
			fi, _ := os.Stat(f)
			size += fi.Size()
			files = append(files, f)
		}
	}
	spool := b.TempDir()
	_, addr, _ := startListener(b, spool, nil)
	host, port, _ := net.SplitHostPort(addr)
	b.SetBytes(size)
	for b.Loop() {
		cmd := exec.Command(bin, append([]string{"-aet", "SENDER", "-aec", "KSPACED", host, port}, files...)...)
		cmd.Env = append(os.Environ(), "TCP_NODELAY=1")
		if out, err := cmd.CombinedOutput(); err != nil {
			b.Fatalf("%v: %s", err, out)
		}
	}
}
