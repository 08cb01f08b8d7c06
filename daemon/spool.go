package daemon

import (
	"crypto/sha256"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/kspaced/kspaced/internal/companion"
	"github.com/kspaced/kspaced/internal/safefile"
)

// Spool folder names under the spool root (docs/spool.md).
const (
	InboxDir  = "inbox"
	WorkDir   = "work"
	OutboxDir = "outbox"
	DoneDir   = "done"
	FailedDir = "failed"
)

// Names inside a job folder (work/<job>, done/<job>, failed/<job>).
const (
	inputDir   = "input"
	outTmpDir  = "out.tmp"
	stateFile  = "state.json"
	errorFile  = "error.json"
	reportFile = "report.json"
)

// Bounds on what a scan of a study folder will walk: a folder beyond them is
// still a job (it fails with a clear error) but is never walked further.
const (
	maxFolderFiles = 20000
	maxFolderDepth = 8
)

// ignored reports whether an inbox name is never a job by itself (hidden,
// an upload in progress, or a companion: see internal/companion), and why.
func ignored(name string) (why string, ign bool) {
	if why, ign := companion.Ignored(name); ign {
		return why, true
	}
	if companion.Is(name) {
		return "travels with another file (sidecar, marker, header, mask or truth)", true
	}
	return "", false
}

// signature summarises what an inbox entry looks like now; the entry is ready
// when its signature has not changed for the quiet period.
type signature struct {
	size  int64
	mtime int64
	ino   uint64
	n     int // files in a folder
	hash  [8]byte
}

// statEntry returns the signature of inbox/name, whether it is a folder,
// and whether a readiness marker says it is complete. The only error besides
// the entry vanishing is errMissingCompanion.
func statEntry(inbox, name string) (sig signature, dir, marked bool, err error) {
	p := filepath.Join(inbox, name)
	fi, err := os.Lstat(p)
	if err != nil {
		return sig, false, false, err
	}
	if _, err := os.Lstat(p + companion.Marker); err == nil {
		marked = true
	}
	switch {
	case fi.Mode().IsRegular():
		sig = signature{size: fi.Size(), mtime: fi.ModTime().UnixNano(), ino: inode(fi)}
		opt, req := companion.Of(name)
		h := sha256.New()
		for _, c := range append(opt, req) {
			if c == "" {
				continue
			}
			if ci, err := os.Lstat(filepath.Join(inbox, c)); err == nil {
				fmt.Fprintf(h, "%s\x00%d\x00%d\x00", c, ci.Size(), ci.ModTime().UnixNano())
			} else if c == req {
				// A .cfl without its .hdr is not ready yet however long it waits.
				return sig, false, false, errMissingCompanion
			}
		}
		copy(sig.hash[:], h.Sum(nil))
		return sig, false, marked, nil
	case fi.IsDir():
		if _, err := os.Lstat(filepath.Join(p, companion.Marker)); err == nil {
			marked = true
		}
		// A walk error (too many files, no permission) leaves a partial
		// signature: the folder still becomes a job once quiet, and fails
		// with a clear error instead of waiting forever.
		sig, _ = folderSignature(p)
		sig.ino = inode(fi)
		if sc, err := os.Lstat(p + companion.Sidecar); err == nil {
			sig.size += sc.Size()
			sig.mtime = max(sig.mtime, sc.ModTime().UnixNano())
		}
		return sig, true, marked, nil
	default:
		// Symlinks, FIFOs, …: claimed like files and failed as bad input.
		return signature{size: fi.Size(), mtime: fi.ModTime().UnixNano(), ino: inode(fi)}, false, marked, nil
	}
}

var (
	errMissingCompanion = errors.New("waiting for companion file")
	errNotRegular       = errors.New("not a regular file or folder (symbolic links are not followed)")
)

// folderSignature walks a study folder (bounded) and hashes every file's
// relative name, size and modification time.
func folderSignature(root string) (signature, error) {
	var sig signature
	h := sha256.New()
	err := filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(root, p)
		if d.IsDir() {
			if strings.Count(rel, string(filepath.Separator)) >= maxFolderDepth {
				return fmt.Errorf("folder nesting deeper than %d levels", maxFolderDepth)
			}
			return nil
		}
		fi, err := d.Info()
		if err != nil {
			return err
		}
		sig.n++
		if sig.n > maxFolderFiles {
			return fmt.Errorf("more than %d files", maxFolderFiles)
		}
		sig.size += fi.Size()
		sig.mtime = max(sig.mtime, fi.ModTime().UnixNano())
		fmt.Fprintf(h, "%s\x00%d\x00%d\x00", rel, fi.Size(), fi.ModTime().UnixNano())
		return nil
	})
	copy(sig.hash[:], h.Sum(nil))
	return sig, err
}

func inode(fi fs.FileInfo) uint64 {
	if st, ok := fi.Sys().(*syscall.Stat_t); ok {
		return st.Ino
	}
	return 0
}

// jobStem derives a job id stem from an inbox name: the extension of a file
// is dropped and anything outside [A-Za-z0-9._-] becomes '_', so ids are safe
// as folder names and in logs and URLs.
func jobStem(name string, dir bool) string {
	if !dir {
		if ext := filepath.Ext(name); ext != "" && ext != name {
			name = strings.TrimSuffix(name, ext)
		}
	}
	b := []byte(name)
	for i, c := range b {
		ok := c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '.' || c == '_' || c == '-'
		if !ok {
			b[i] = '_'
		}
	}
	s := strings.Trim(string(b), ".")
	if len(s) > 96 {
		s = s[:96]
	}
	if s == "" {
		s = "job"
	}
	return s
}

// lockDir opens and exclusively flocks a job folder without blocking. The
// lock lives as long as the returned file stays open (the kernel drops it
// when the process dies), so a live daemon's jobs are never "recovered" by
// another. The identity check catches a folder removed or replaced between
// open and flock by a peer's recovery.
func lockDir(path string) (*os.File, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		f.Close()
		return nil, err
	}
	held, err1 := f.Stat()
	now, err2 := os.Stat(path)
	if err1 != nil || err2 != nil || !os.SameFile(held, now) {
		f.Close()
		return nil, errLockStale
	}
	return f, nil
}

var errLockStale = errors.New("job folder changed while locking")

// claim is a job this process owns: its folder under work/ is flocked
// through lock until the folder leaves work/.
type claim struct {
	id    string
	dir   string   // work/<id>
	lock  *os.File // flocked folder
	entry string   // the inbox name, now input/<entry>
	seen  time.Time
	// suspect: the job was running when a daemon died. It runs alone, so
	// a crash it causes is counted against it and not against jobs that
	// happened to run beside it.
	suspect bool
}

// maxIDSuffix bounds the search for a free job id: far beyond any real
// spool, so a stem is never refused for having been used many times.
const maxIDSuffix = 1 << 24

// claimEntry claims inbox/name for this process: create a fresh, locked
// work/<id>/input and rename the entry into it. The rename is the atomic
// step: of several daemons racing for one entry exactly one succeeds, the
// others get ENOENT (errLost). Companions (sidecar, marker, .hdr, mask,
// truth) follow; which ones (by inode) is recorded in state.json before the
// rename, so a recovery after a crash in between takes exactly those and
// never a newer same-named file meant for the next scan.
func claimEntry(spool, name string, dir bool) (*claim, error) {
	inbox := filepath.Join(spool, InboxDir)
	stem := jobStem(name, dir)
	for n := 1; n <= maxIDSuffix; n++ {
		if n == 1000 {
			// Past the first thousand, jump beyond the highest suffix in use
			// instead of probing each one.
			n = max(n, highestSuffix(spool, stem)+1)
		}
		id := stem
		if n > 1 {
			id = stem + "-" + strconv.Itoa(n)
		}
		wd := filepath.Join(spool, WorkDir, id)
		var lock *os.File
		if err := os.Mkdir(wd, 0o755); err != nil {
			if !errors.Is(err, fs.ErrExist) {
				return nil, fmt.Errorf("claim %s: %w", name, err)
			}
			// A claim that died before its entry arrived keeps its id: adopt
			// the empty folder rather than move on to <stem>-2.
			if lock = adoptEmpty(wd); lock == nil {
				continue
			}
		}
		// Checked after the mkdir: a job with this id that was in work/ a
		// moment ago has published to outbox/ and moved on before its work
		// folder disappeared, so the check cannot miss it.
		if taken, err := idTaken(spool, id); taken || err != nil {
			if lock != nil {
				lock.Close()
			}
			os.Remove(wd)
			if err != nil {
				return nil, fmt.Errorf("claim %s: %w", name, err)
			}
			continue
		}
		if lock == nil {
			if testAfterMkdir != nil {
				testAfterMkdir(wd)
			}
			var err error
			if lock, err = lockDir(wd); err != nil {
				// A peer holds our fresh, empty folder: its recovery is
				// looking at it, or its claim adopted it. It is the peer's
				// now — removing it would leave the peer's lock on a dead
				// folder — so leave it; the entry stays in the inbox for
				// next time and stale empty claims are swept by recovery.
				return nil, errLost
			}
		}
		c := &claim{id: id, dir: wd, lock: lock, entry: name}
		// Mkdir, not MkdirAll: if wd vanished since we locked it, recreating
		// it would give an unlocked folder a peer could recover.
		if err := os.Mkdir(filepath.Join(wd, inputDir), 0o755); err != nil && !errors.Is(err, fs.ErrExist) {
			c.release(false)
			if errors.Is(err, fs.ErrNotExist) {
				return nil, errLost
			}
			return nil, fmt.Errorf("claim %s: %w", name, err)
		}
		st := jobState{Entry: name, Claimed: time.Now(), Companions: presentCompanions(inbox, name)}
		if err := writeJSON(filepath.Join(wd, stateFile), st); err != nil {
			c.release(true)
			return nil, fmt.Errorf("claim %s: %w", name, err)
		}
		if err := os.Rename(filepath.Join(inbox, name), filepath.Join(wd, inputDir, name)); err != nil {
			c.release(true)
			if errors.Is(err, fs.ErrNotExist) {
				return nil, errLost
			}
			return nil, fmt.Errorf("claim %s: %w", name, err)
		}
		sweepCompanions(inbox, filepath.Join(wd, inputDir), st.Companions)
		return c, nil
	}
	return nil, fmt.Errorf("claim %s: no free job id for stem %q", name, stem)
}

// highestSuffix is the largest N of any <stem>-N in the spool's job folders.
func highestSuffix(spool, stem string) int {
	hi := 0
	for _, d := range []string{WorkDir, OutboxDir, DoneDir, FailedDir} {
		des, _ := os.ReadDir(filepath.Join(spool, d))
		for _, de := range des {
			rest, ok := strings.CutPrefix(de.Name(), stem+"-")
			if !ok {
				continue
			}
			if n, err := strconv.Atoi(rest); err == nil && n > hi {
				hi = n
			}
		}
	}
	return hi
}

// presentCompanions records the companions of name now in the inbox, by
// inode.
func presentCompanions(inbox, name string) map[string]uint64 {
	opt, req := companion.Of(name)
	out := map[string]uint64{}
	for _, c := range append(opt, req) {
		if c == "" {
			continue
		}
		if fi, err := os.Lstat(filepath.Join(inbox, c)); err == nil {
			out[c] = inode(fi)
		}
	}
	return out
}

var errLost = errors.New("entry taken by another process")

// testAfterMkdir, when set by a test, runs between creating a claim's work
// folder and locking it: the window a peer can take the folder in.
var testAfterMkdir func(wd string)

// adoptEmpty locks an existing work folder whose input never arrived (a
// claim interrupted between mkdir and rename) and returns the lock, or nil
// if the folder is held by someone or holds a job.
func adoptEmpty(wd string) *os.File {
	lock, err := lockDir(wd)
	if err != nil {
		return nil
	}
	if !emptyDir(filepath.Join(wd, inputDir)) {
		lock.Close()
		return nil
	}
	return lock
}

func emptyDir(p string) bool {
	des, err := os.ReadDir(p)
	return err != nil || len(des) == 0
}

// idTaken reports whether a finished job already uses id. An error other
// than "not there" (done/ unreadable) is returned: retrying the next id
// would meet it again, for ever.
func idTaken(spool, id string) (bool, error) {
	for _, d := range []string{OutboxDir, DoneDir, FailedDir} {
		_, err := os.Lstat(filepath.Join(spool, d, id))
		if err == nil {
			return true, nil
		}
		if !errors.Is(err, fs.ErrNotExist) {
			return true, err
		}
	}
	return false, nil
}

// sweepCompanions moves the recorded companions (name → inode at claim
// time) into the job's input folder. Missing ones are fine: recovery calls
// this again after a crash between the claim rename and these. A file of
// that name with another inode, or one already in input/, is left alone: it
// was dropped after the claim and belongs to the next scan.
func sweepCompanions(inbox, input string, want map[string]uint64) {
	for c, ino := range want {
		src, dst := filepath.Join(inbox, c), filepath.Join(input, c)
		fi, err := os.Lstat(src)
		if err != nil || inode(fi) != ino {
			continue
		}
		if _, err := os.Lstat(dst); err == nil {
			continue // never replace what the job already holds
		}
		_ = os.Rename(src, dst)
	}
}

// release unlocks the claim; with remove it first deletes the work folder
// (only for a claim that never received its entry).
func (c *claim) release(remove bool) {
	if remove {
		os.RemoveAll(c.dir)
	}
	c.lock.Close()
}

// mainEntry finds the job's entry in input/: the one name that is not a
// companion of another.
func mainEntry(input string) (string, error) {
	des, err := os.ReadDir(input)
	if err != nil {
		return "", err
	}
	names := map[string]bool{}
	for _, d := range des {
		names[d.Name()] = true
	}
	var mains []string
	for n := range names {
		if slices.ContainsFunc(companion.Owners(n), func(o string) bool { return names[o] }) {
			continue
		}
		mains = append(mains, n)
	}
	sort.Strings(mains)
	if len(mains) != 1 {
		return "", fmt.Errorf("job folder holds %d entries %q, want one", len(mains), mains)
	}
	return mains[0], nil
}

// jobInputs lists the files the processor receives: the entry itself, or
// every file of a study folder except markers and hidden files. Every file
// in the job's input folder — entry, options file, companions, study files —
// must be a regular file: a symbolic link, FIFO or device fails the job
// before anything reads it (a link could point at another patient's data or
// a secret, /dev/zero would fill memory, a FIFO would block).
func jobInputs(input, entry string) ([]string, error) {
	if err := checkRegular(input); err != nil {
		return nil, err
	}
	p := filepath.Join(input, entry)
	fi, err := os.Lstat(p)
	if err != nil {
		return nil, err
	}
	if fi.Mode().IsRegular() {
		return []string{p}, nil
	}
	if !fi.IsDir() {
		return nil, errNotRegular
	}
	var files []string
	err = filepath.WalkDir(p, func(q string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if q != p && strings.HasPrefix(d.Name(), ".") {
			if d.IsDir() {
				return filepath.SkipDir
			}
			return nil
		}
		if d.Type().IsRegular() {
			if len(files) >= maxFolderFiles {
				return fmt.Errorf("more than %d files", maxFolderFiles)
			}
			files = append(files, q)
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	if len(files) == 0 {
		return nil, errors.New("the study folder holds no files")
	}
	return files, nil
}

// checkRegular walks a job's input folder (bounded) and refuses anything
// but folders and regular files outside hidden names, which nothing reads.
func checkRegular(input string) error {
	n := 0
	return filepath.WalkDir(input, func(q string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if q == input {
			return nil
		}
		rel, _ := filepath.Rel(input, q)
		if strings.HasPrefix(d.Name(), ".") && strings.Contains(rel, string(filepath.Separator)) {
			if d.IsDir() {
				return filepath.SkipDir
			}
			return nil
		}
		if d.IsDir() {
			if strings.Count(rel, string(filepath.Separator)) >= maxFolderDepth {
				return fmt.Errorf("folder nesting deeper than %d levels", maxFolderDepth)
			}
			return nil
		}
		if n++; n > maxFolderFiles+16 {
			return fmt.Errorf("more than %d files", maxFolderFiles)
		}
		if err := safefile.Check(input, q, 0); err != nil {
			return fmt.Errorf("%s: %w", filepath.ToSlash(rel), errors.Unwrap(err))
		}
		return nil
	})
}

// freeBytes is the space available to unprivileged users on path's
// filesystem.
func freeBytes(path string) (uint64, error) {
	var st syscall.Statfs_t
	if err := syscall.Statfs(path, &st); err != nil {
		return 0, err
	}
	return st.Bavail * uint64(st.Bsize), nil
}
