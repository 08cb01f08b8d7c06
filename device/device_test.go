package device

import (
	"context"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/kspaced/kspaced/priors"
	"github.com/kspaced/kspaced/priors/builtin"
)

func savedPrior(t *testing.T, path string, seed uint64) {
	t.Helper()
	cfg := priors.UNetConfig{Channels: 2, Rows: 8, Cols: 8, Widths: []int{8, 16}, Blocks: 1, Heads: 1,
		EmbedDim: 16, EmbedMaxPeriod: 1000, Unshuffle: 1, Groups: 4}
	u, err := priors.NewUNet(cfg, seed)
	if err != nil {
		t.Fatal(err)
	}
	if err := u.Save(path, priors.CheckpointMeta{Architecture: cfg}); err != nil {
		t.Fatal(err)
	}
}

// Prior reads a checkpoint once per version of the file: the next job gets
// the same network back, an overlapping job a copy, a rewritten file a
// fresh load.
func TestPriorCache(t *testing.T) {
	path := filepath.Join(t.TempDir(), "p.safetensors")
	savedPrior(t, path, 1)
	d, err := Open("cpu")
	if err != nil {
		t.Fatal(err)
	}
	a, info, relA, err := d.Prior(path)
	if err != nil || info.Kind != priors.KindUNet {
		t.Fatal(info, err)
	}
	b, _, relB, err := d.Prior(path) // overlaps a: a copy
	if err != nil {
		t.Fatal(err)
	}
	if a == b {
		t.Fatal("two overlapping jobs share one network")
	}
	x, sigma := make([]float32, 2*8*8), []float32{0.7}
	for i := range x {
		x[i] = float32(i%7) - 3
	}
	da, db := make([]float32, len(x)), make([]float32, len(x))
	if err := a.Denoise(da, x, sigma); err != nil {
		t.Fatal(err)
	}
	if err := b.Denoise(db, x, sigma); err != nil {
		t.Fatal(err)
	}
	for i := range da {
		if da[i] != db[i] {
			t.Fatalf("copy differs at %d: %g, %g", i, db[i], da[i])
		}
	}
	relA()
	relB()
	c, _, relC, err := d.Prior(path)
	if err != nil {
		t.Fatal(err)
	}
	if c != a && c != b {
		t.Fatal("a released network was not reused")
	}
	relC()
	// A new file at the same path is loaded afresh.
	later := time.Now().Add(time.Minute)
	savedPrior(t, path, 2)
	if err := os.Chtimes(path, later, later); err != nil {
		t.Fatal(err)
	}
	e, _, relE, err := d.Prior(path)
	if err != nil {
		t.Fatal(err)
	}
	defer relE()
	if e == a || e == b {
		t.Fatal("a rewritten checkpoint was served from the cache")
	}
	if _, _, _, err := d.Prior(filepath.Join(t.TempDir(), "missing")); err == nil {
		t.Fatal("missing prior accepted")
	}
}

// A device with one slot runs one job at a time; the CPU does not limit.
func TestAcquire(t *testing.T) {
	ctx := context.Background()
	r1, err := CPU().Acquire(ctx)
	if err != nil {
		t.Fatal(err)
	}
	r2, err := CPU().Acquire(ctx)
	if err != nil {
		t.Fatal(err)
	}
	r1()
	r2()
	d := &Device{name: "one", slots: make(chan struct{}, 1)}
	rel, err := d.Acquire(ctx)
	if err != nil {
		t.Fatal(err)
	}
	short, cancel := context.WithTimeout(ctx, 20*time.Millisecond)
	defer cancel()
	if _, err := d.Acquire(short); err == nil {
		t.Fatal("second job acquired a busy one-slot device")
	}
	rel()
	rel2, err := d.Acquire(ctx)
	if err != nil {
		t.Fatal(err)
	}
	rel2()
}

func TestSet(t *testing.T) {
	var s Set
	a, err := s.Get("cpu")
	if err != nil {
		t.Fatal(err)
	}
	b, _ := s.Get("cpu")
	if a != b {
		t.Fatal("cpu opened twice")
	}
	if _, err := s.Get("tpu"); err == nil {
		t.Fatal("unknown device accepted")
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
}

// Jobs taking and giving back the same prior at once each get a network of
// their own.
func TestPriorConcurrent(t *testing.T) {
	path := filepath.Join(t.TempDir(), "p.safetensors")
	savedPrior(t, path, 3)
	d, err := Open("cpu")
	if err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	inUse := map[priors.Denoiser]bool{}
	var wg sync.WaitGroup
	for range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range 5 {
				den, _, release, err := d.Prior(path)
				if err != nil {
					t.Error(err)
					return
				}
				mu.Lock()
				if inUse[den] {
					t.Error("one network lent to two jobs at once")
				}
				inUse[den] = true
				mu.Unlock()
				x, out := make([]float32, 2*8*8), make([]float32, 2*8*8)
				if err := den.Denoise(out, x, []float32{1}); err != nil {
					t.Error(err)
				}
				mu.Lock()
				inUse[den] = false
				mu.Unlock()
				release()
			}
		}()
	}
	wg.Wait()
}

// The empty path is the built-in prior: loaded once, then served from the
// cache like a file.
func TestBuiltinPrior(t *testing.T) {
	d := CPU()
	a, info, rel, err := d.Prior("")
	if err != nil {
		t.Fatal(err)
	}
	if info.Name != builtin.Name || info.Kind != priors.KindUNet {
		t.Fatalf("prior %q of kind %q", info.Name, info.Kind)
	}
	rel()
	b, _, rel, err := d.Prior("")
	if err != nil {
		t.Fatal(err)
	}
	defer rel()
	if a != b {
		t.Fatal("the built-in prior was loaded twice")
	}
}
