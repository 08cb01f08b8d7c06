package safefile

import (
	"errors"
	"io"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

func TestOpenRefusesWhatIsNotARegularFileInside(t *testing.T) {
	t.Parallel()
	root := t.TempDir()
	secret := filepath.Join(t.TempDir(), "secret.txt")
	must(t, os.WriteFile(secret, []byte("PATIENT^SECRET"), 0o600))
	must(t, os.WriteFile(filepath.Join(root, "ok.json"), []byte(`{}`), 0o644))
	must(t, os.Symlink(secret, filepath.Join(root, "link.json")))
	must(t, os.Symlink("/dev/zero", filepath.Join(root, "zero.json")))
	must(t, syscall.Mkfifo(filepath.Join(root, "fifo.json"), 0o644))
	must(t, os.Mkdir(filepath.Join(root, "sub"), 0o755))
	must(t, os.Symlink(filepath.Dir(secret), filepath.Join(root, "linkdir")))

	if b, err := ReadFile(root, filepath.Join(root, "ok.json"), 100); err != nil || string(b) != "{}" {
		t.Fatalf("regular file: %q, %v", b, err)
	}
	cases := []struct {
		root, path string
		want       error
	}{
		{root, filepath.Join(root, "link.json"), ErrNotRegular},
		{root, filepath.Join(root, "zero.json"), ErrNotRegular},
		{"", filepath.Join(root, "zero.json"), ErrNotRegular},
		{"", "/dev/zero", ErrNotRegular},
		{root, filepath.Join(root, "fifo.json"), ErrNotRegular},
		{root, filepath.Join(root, "sub"), ErrNotRegular},
		{root, filepath.Join(root, "linkdir", "secret.txt"), ErrNotRegular},
		{root, filepath.Join(root, "..", filepath.Base(root)+"x", "a"), ErrOutside},
		{root, secret, ErrOutside},
		{root, root, ErrOutside},
	}
	for _, c := range cases {
		done := make(chan struct{})
		var b []byte
		var err error
		go func() { b, err = ReadFile(c.root, c.path, 1<<20); close(done) }()
		select {
		case <-done:
		case <-time.After(5 * time.Second):
			t.Fatalf("ReadFile(%s) hangs", c.path)
		}
		if !errors.Is(err, c.want) {
			t.Errorf("ReadFile(%q, %q) = %q, %v; want %v", c.root, c.path, b, err, c.want)
		}
		if err != nil && strings.Contains(err.Error(), "PATIENT") {
			t.Errorf("error leaks the file's content: %v", err)
		}
	}
}

func TestReadFileLimit(t *testing.T) {
	t.Parallel()
	root := t.TempDir()
	p := filepath.Join(root, "big")
	must(t, os.WriteFile(p, make([]byte, 101), 0o644))
	if _, err := ReadFile(root, p, 100); !errors.Is(err, ErrTooLarge) {
		t.Fatalf("101 bytes with limit 100: %v", err)
	}
	if b, err := ReadFile(root, p, 101); err != nil || len(b) != 101 {
		t.Fatalf("101 bytes with limit 101: %d, %v", len(b), err)
	}
	// A sparse file claiming far more than it holds is refused by its size,
	// before any read.
	sp := filepath.Join(root, "sparse")
	f, err := os.Create(sp)
	must(t, err)
	must(t, f.Truncate(1<<40))
	f.Close()
	if _, err := ReadFile(root, sp, 1<<20); !errors.Is(err, ErrTooLarge) {
		t.Fatalf("sparse 1 TiB: %v", err)
	}
}

func TestWritesAreAtomicAndRespectTheUmask(t *testing.T) {
	old := syscall.Umask(0o027)
	defer syscall.Umask(old)
	dir := t.TempDir()
	p := filepath.Join(dir, "a.json")
	must(t, WriteFile(p, []byte("one"), 0o644))
	must(t, WriteFile(p, []byte("two"), 0o644))
	if b, _ := os.ReadFile(p); string(b) != "two" {
		t.Fatalf("content %q", b)
	}
	if fi, _ := os.Stat(p); fi.Mode().Perm() != 0o640 {
		t.Errorf("file mode %v under umask 027, want 0640", fi.Mode().Perm())
	}
	// A failed write leaves the old file and no temporary.
	err := Write(p, 0o644, func(w io.Writer) error {
		w.Write([]byte("half"))
		return errors.New("disk full")
	})
	if err == nil || !strings.Contains(err.Error(), "disk full") {
		t.Fatalf("failed write: %v", err)
	}
	if b, _ := os.ReadFile(p); string(b) != "two" {
		t.Fatalf("content after failed write %q", b)
	}
	must(t, WriteDir(dir, "series", 0o755, func(tmp string) error {
		return os.WriteFile(filepath.Join(tmp, "x"), []byte("x"), 0o644)
	}))
	if fi, _ := os.Stat(filepath.Join(dir, "series")); fi.Mode().Perm() != 0o750 {
		t.Errorf("folder mode %v under umask 027, want 0750", fi.Mode().Perm())
	}
	if err := WriteDir(dir, "series", 0o755, func(string) error { return nil }); err == nil {
		t.Error("WriteDir replaced an existing folder")
	}
	if err := WriteDir(dir, "bad", 0o755, func(string) error { return errors.New("no") }); err == nil {
		t.Error("failed fill reported success")
	}
	des, _ := os.ReadDir(dir)
	for _, d := range des {
		if strings.HasPrefix(d.Name(), ".") {
			t.Errorf("temporary %s left behind", d.Name())
		}
	}
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}
