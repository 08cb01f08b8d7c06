//go:build cgo

package kspaceio

import (
	"bufio"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"runtime/debug"
	"strconv"
	"strings"
	"syscall"
	"testing"

	"github.com/kspaced/kspaced/internal/testutil"
)

// Benchmarks read volumes of the size the issue names: a fastMRI knee volume
// of 15 slices × 15 coils × 640 × 368 complex64 (424 MB), contiguous and
// chunked+gzip, and an ISMRMRD file of about the same size from libismrmrd's
// generator (17 repetitions × 320 lines × 15 coils × 640 samples). Files are
// made once in $KSPACED_BENCH_DIR (default: the system temp dir) and reused.
// Reported: MB/s of file read, peak RSS during the read and its ratio to the
// k-space returned. Run: go test -run '^$' -bench Read -benchtime 2x ./mri/kspaceio

func benchDir(b *testing.B) string {
	d := os.Getenv("KSPACED_BENCH_DIR")
	if d == "" {
		d = filepath.Join(os.TempDir(), "kspaced-bench")
	}
	if err := os.MkdirAll(d, 0o755); err != nil {
		b.Fatal(err)
	}
	return d
}

const benchFastMRIScript = `
import sys, h5py, numpy as np
path, gz = sys.argv[1], sys.argv[2] == '1'
rng = np.random.default_rng(1)
with h5py.File(path + '.part', 'w') as f:
    kw = dict(chunks=(1, 15, 640, 368), compression='gzip', compression_opts=1) if gz else {}
    d = f.create_dataset('kspace', shape=(15, 15, 640, 368), dtype=np.complex64, **kw)
    for s in range(15):
        k = rng.standard_normal((15, 640, 368, 2), np.float32)
        if gz:
            k = np.round(k * 256) / 256  # some redundancy, as real k-space has
        d[s] = k.view(np.complex64)[..., 0]
    f.attrs['acquisition'] = 'CORPD_FBK'
import os; os.rename(path + '.part', path)
`

func benchFile(b *testing.B, name string, make func(path string)) string {
	p := filepath.Join(benchDir(b), name)
	if _, err := os.Stat(p); err != nil {
		make(p)
	}
	return p
}

func procStatus(b *testing.B, key string) int64 {
	fh, err := os.Open("/proc/self/status")
	if err != nil {
		b.Skip(err)
	}
	defer fh.Close()
	sc := bufio.NewScanner(fh)
	for sc.Scan() {
		if f := strings.Fields(sc.Text()); len(f) >= 2 && f[0] == key+":" {
			kb, _ := strconv.ParseInt(f[1], 10, 64)
			return kb << 10
		}
	}
	b.Skipf("no %s in /proc/self/status", key)
	return 0
}

// benchRead reads path b.N times. Before each read (timer stopped) the heap
// is collected and returned to the OS and the kernel's RSS high-water mark
// is reset, so RSS growth and CPU time belong to the read alone.
func benchRead(b *testing.B, path string) {
	st, err := os.Stat(path)
	if err != nil {
		b.Fatal(err)
	}
	b.SetBytes(st.Size())
	var peak, growth, kbytes int64
	var cpu float64
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		b.StopTimer()
		runtime.GC()
		debug.FreeOSMemory()
		if err := os.WriteFile("/proc/self/clear_refs", []byte("5"), 0); err != nil {
			b.Skipf("cannot reset VmHWM: %v", err)
		}
		before := procStatus(b, "VmRSS")
		c0 := cpuSeconds()
		b.StartTimer()
		v, err := Read(path)
		b.StopTimer()
		cpu += cpuSeconds() - c0
		if err != nil {
			b.Fatal(err)
		}
		pk := procStatus(b, "VmHWM")
		peak, growth = max(peak, pk), max(growth, pk-before)
		kbytes = 0
		for _, s := range v.Slices {
			kbytes += int64(len(s.KSpace)) * 8
		}
		b.StartTimer()
	}
	b.StopTimer()
	b.ReportMetric(float64(kbytes)/1e6, "kspace-MB")
	b.ReportMetric(float64(peak)/1e6, "peakRSS-MB")
	b.ReportMetric(float64(growth)/1e6, "RSSgrowth-MB")
	b.ReportMetric(float64(growth)/float64(kbytes), "RSSgrowth/kspace")
	// CPU time is what a loaded machine cannot inflate: MB of file per
	// CPU-second (all threads of the process, GC included).
	b.ReportMetric(cpu/float64(b.N), "cpu-s/op")
	b.ReportMetric(float64(st.Size())/1e6/(cpu/float64(b.N)), "MB/cpu-s")
}

func cpuSeconds() float64 {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return float64(ru.Utime.Nano()+ru.Stime.Nano()) / 1e9
}

func BenchmarkReadFastMRI(b *testing.B) {
	py := testutil.PythonWith(b, "h5py", "numpy")
	p := benchFile(b, "knee_15x15x640x368.h5", func(p string) {
		if out, err := exec.Command(py, "-c", benchFastMRIScript, p, "0").CombinedOutput(); err != nil {
			b.Fatalf("%v\n%s", err, out)
		}
	})
	benchRead(b, p)
}

func BenchmarkReadFastMRIGzip(b *testing.B) {
	py := testutil.PythonWith(b, "h5py", "numpy")
	p := benchFile(b, "knee_15x15x640x368_gzip1.h5", func(p string) {
		if out, err := exec.Command(py, "-c", benchFastMRIScript, p, "1").CombinedOutput(); err != nil {
			b.Fatalf("%v\n%s", err, out)
		}
	})
	benchRead(b, p)
}

func BenchmarkReadISMRMRD(b *testing.B) {
	tool := testutil.Tool(b, "ismrmrd_generate_cartesian_shepp_logan")
	p := benchFile(b, "shepp_m320_c15_r17.h5", func(p string) {
		args := []string{"-m", "320", "-c", "15", "-O", "2", "-r", "17", "-C", "-o", p + ".part"}
		if out, err := exec.Command(tool, args...).CombinedOutput(); err != nil {
			b.Fatalf("%v\n%s", err, out)
		}
		if err := os.Rename(p+".part", p); err != nil {
			b.Fatal(err)
		}
	})
	benchRead(b, p)
}
