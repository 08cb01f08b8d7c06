// Package safefile is kspaced's one home for touching files it does not
// trust and for writing files readers must see whole.
//
// Reading: Open and ReadFile open a path as what it claims to be — a regular
// file, reached without following any symbolic link, inside a given root,
// no larger than a limit — so a dropped link to a secret, /dev/zero or a FIFO
// is refused before a byte is read and never blocks.
//
// Writing: WriteFile, Write, Replace and WriteDir write into a temporary
// sibling, fsync it, rename it into place and fsync the folder, so a reader
// (or a restart after a power cut) sees the old content or the new one,
// never a mix. New files and folders get the caller's permissions filtered
// by the process umask, as os.WriteFile does: the service's umask is the
// operator's choice.
package safefile

import (
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"syscall"
)

var (
	// ErrNotRegular: the path is a symbolic link, FIFO, device, socket or
	// folder where a regular file was expected.
	ErrNotRegular = errors.New("not a regular file (symbolic links, FIFOs and devices are refused)")
	// ErrOutside: the path is not inside the root it must stay in.
	ErrOutside = errors.New("outside the folder it must stay in")
	// ErrTooLarge: the file is larger than the caller's limit.
	ErrTooLarge = errors.New("file too large")
)

// Open opens path read-only as a regular file no larger than limit bytes
// (limit ≤ 0: no limit). With root != "", path must lie inside root and no
// component below root may be a symbolic link; every component is opened
// with O_NOFOLLOW, so a link swapped in between checks is refused too.
// The open never blocks (O_NONBLOCK), so a FIFO is refused instead of hanging.
func Open(root, path string, limit int64) (*os.File, error) {
	f, err := open(root, path)
	if err != nil {
		return nil, fmt.Errorf("open %s: %w", path, err)
	}
	if err := checkFile(f, limit); err != nil {
		f.Close()
		return nil, fmt.Errorf("open %s: %w", path, err)
	}
	return f, nil
}

// ReadFile reads a file opened by Open, whole, refusing more than limit
// bytes even if the file grows while it is read.
func ReadFile(root, path string, limit int64) ([]byte, error) {
	f, err := Open(root, path, limit)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	r := io.Reader(f)
	if limit > 0 {
		r = io.LimitReader(f, limit+1)
	}
	b, err := io.ReadAll(r)
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", path, err)
	}
	if limit > 0 && int64(len(b)) > limit {
		return nil, fmt.Errorf("read %s: %w (over %d bytes)", path, ErrTooLarge, limit)
	}
	return b, nil
}

// Check reports whether path could be opened by Open: a regular file, inside
// root, within limit. It does not keep the file open.
func Check(root, path string, limit int64) error {
	f, err := Open(root, path, limit)
	if err != nil {
		return err
	}
	return f.Close()
}

func checkFile(f *os.File, limit int64) error {
	fi, err := f.Stat()
	if err != nil {
		return err
	}
	if !fi.Mode().IsRegular() {
		return fmt.Errorf("%w: %s", ErrNotRegular, kind(fi.Mode()))
	}
	if limit > 0 && fi.Size() > limit {
		return fmt.Errorf("%w: %d bytes, limit %d", ErrTooLarge, fi.Size(), limit)
	}
	return nil
}

func kind(m fs.FileMode) string {
	switch {
	case m&fs.ModeSymlink != 0:
		return "symbolic link"
	case m&fs.ModeNamedPipe != 0:
		return "FIFO"
	case m&fs.ModeDevice != 0:
		return "device"
	case m&fs.ModeSocket != 0:
		return "socket"
	case m.IsDir():
		return "folder"
	}
	return "special file"
}

const readFlags = syscall.O_RDONLY | syscall.O_NOFOLLOW | syscall.O_NONBLOCK | syscall.O_CLOEXEC

// open walks from root to path one component at a time with O_NOFOLLOW.
func open(root, path string) (*os.File, error) {
	if root == "" {
		fd, err := syscall.Open(path, readFlags, 0)
		if err != nil {
			return nil, linkErr(err)
		}
		return os.NewFile(uintptr(fd), path), nil
	}
	rel, err := Within(root, path)
	if err != nil {
		return nil, err
	}
	dfd, err := syscall.Open(root, syscall.O_RDONLY|syscall.O_DIRECTORY|syscall.O_CLOEXEC, 0)
	if err != nil {
		return nil, err
	}
	parts := strings.Split(rel, string(filepath.Separator))
	for i, p := range parts {
		flags := readFlags
		if i < len(parts)-1 {
			flags = syscall.O_RDONLY | syscall.O_NOFOLLOW | syscall.O_DIRECTORY | syscall.O_CLOEXEC
		}
		fd, err := syscall.Openat(dfd, p, flags, 0)
		syscall.Close(dfd)
		if err != nil {
			return nil, linkErr(err)
		}
		dfd = fd
	}
	return os.NewFile(uintptr(dfd), path), nil
}

// linkErr names what O_NOFOLLOW and O_DIRECTORY refusals mean.
func linkErr(err error) error {
	if errors.Is(err, syscall.ELOOP) || errors.Is(err, syscall.ENOTDIR) {
		return fmt.Errorf("%w: symbolic link", ErrNotRegular)
	}
	return err
}

// Within returns path relative to root, or ErrOutside if it is not below
// it (lexically: symbolic links are dealt with by Open).
func Within(root, path string) (string, error) {
	rel, err := filepath.Rel(filepath.Clean(root), filepath.Clean(path))
	if err != nil || rel == "." || rel == ".." || strings.HasPrefix(rel, ".."+string(filepath.Separator)) || filepath.IsAbs(rel) {
		return "", ErrOutside
	}
	return rel, nil
}

// WriteFile writes data to path atomically and durably (see the package
// doc). perm is filtered by the umask.
func WriteFile(path string, data []byte, perm fs.FileMode) error {
	return Write(path, perm, func(w io.Writer) error {
		_, err := w.Write(data)
		return err
	})
}

// Write is WriteFile for content produced by a writer function.
func Write(path string, perm fs.FileMode, write func(io.Writer) error) error {
	return Replace(path, perm, func(tmp string) error {
		f, err := os.OpenFile(tmp, os.O_WRONLY|os.O_TRUNC, 0)
		if err != nil {
			return err
		}
		err = write(f)
		if cerr := f.Close(); err == nil {
			err = cerr
		}
		return err
	})
}

// Replace is Write for code that writes by path (a C library): fill gets the
// name of an empty temporary file beside path, created with perm (filtered
// by the umask), and may reopen or truncate it. On success the file is
// synced and renamed over path and the folder synced; on failure it is removed.
func Replace(path string, perm fs.FileMode, fill func(tmp string) error) (err error) {
	dir := filepath.Dir(path)
	tmp, f, err := createTemp(dir, filepath.Base(path), perm)
	if err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	f.Close()
	defer func() {
		if err != nil {
			os.Remove(tmp)
		}
	}()
	if err = fill(tmp); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	if err = syncPath(tmp); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	if err = os.Rename(tmp, path); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	return SyncDir(dir)
}

// WriteDir creates parent/name whole or not at all: fill writes into a hidden
// temporary sibling (".name.tmp-…"), whose files and folder are synced before
// it is renamed into place. It refuses to replace an existing parent/name.
func WriteDir(parent, name string, perm fs.FileMode, fill func(tmp string) error) (err error) {
	if err := os.MkdirAll(parent, perm|0o700); err != nil {
		return err
	}
	final := filepath.Join(parent, name)
	if _, err := os.Lstat(final); err == nil {
		return fmt.Errorf("%s already exists", final)
	}
	var tmp string
	for range 100 {
		tmp = filepath.Join(parent, "."+name+".tmp-"+random())
		if err = os.Mkdir(tmp, perm); !errors.Is(err, fs.ErrExist) {
			break
		}
	}
	if err != nil {
		return err
	}
	defer func() {
		if err != nil {
			os.RemoveAll(tmp)
		}
	}()
	if err = fill(tmp); err != nil {
		return err
	}
	if err = SyncTree(tmp); err != nil {
		return err
	}
	if err = os.Rename(tmp, final); err != nil {
		return err
	}
	return SyncDir(parent)
}

// createTemp creates a new hidden file beside base with perm: unlike
// os.CreateTemp (always 0600) the umask, not a chmod, decides the rest.
func createTemp(dir, base string, perm fs.FileMode) (string, *os.File, error) {
	for range 100 {
		name := filepath.Join(dir, "."+base+".tmp-"+random())
		f, err := os.OpenFile(name, os.O_RDWR|os.O_CREATE|os.O_EXCL, perm)
		if errors.Is(err, fs.ErrExist) {
			continue
		}
		return name, f, err
	}
	return "", nil, fmt.Errorf("no free temporary name in %s", dir)
}

func random() string {
	var b [6]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

// SyncDir fsyncs a folder, making renames and creations in it durable.
func SyncDir(dir string) error {
	if err := syncPath(dir); err != nil {
		return fmt.Errorf("sync %s: %w", dir, err)
	}
	return nil
}

// SyncTree fsyncs every regular file and folder under root, so that a
// rename publishing root never exposes data not yet on disk.
func SyncTree(root string) error {
	return filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if !d.IsDir() && !d.Type().IsRegular() {
			return nil
		}
		if err := syncPath(p); err != nil {
			return fmt.Errorf("sync %s: %w", p, err)
		}
		return nil
	})
}

func syncPath(p string) error {
	f, err := os.Open(p)
	if err != nil {
		return err
	}
	err = f.Sync()
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	return err
}
