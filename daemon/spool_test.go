package daemon

import (
	"errors"
	"os"
	"path/filepath"
	"testing"
)

// TestClaimLosesFreshFolderToPeer: a peer adopts our just-created, not yet
// locked work folder. We must give up without removing it: removing it made
// the peer recreate an unlocked folder, which a third recovery then took
// while the peer worked on it (seen once as a job reported done twice).
func TestClaimLosesFreshFolderToPeer(t *testing.T) {
	spool := t.TempDir()
	for _, d := range []string{InboxDir, WorkDir, OutboxDir, DoneDir, FailedDir} {
		if err := os.MkdirAll(filepath.Join(spool, d), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.WriteFile(filepath.Join(spool, InboxDir, "x.npy"), []byte("x"), 0o644); err != nil {
		t.Fatal(err)
	}
	var peer *os.File
	testAfterMkdir = func(wd string) {
		testAfterMkdir = nil
		peer = adoptEmpty(wd)
	}
	defer func() { testAfterMkdir = nil }()
	if _, err := claimEntry(spool, "x.npy", false); !errors.Is(err, errLost) {
		t.Fatalf("claim while a peer holds the folder: %v, want errLost", err)
	}
	if peer == nil {
		t.Fatal("peer could not adopt the fresh folder")
	}
	defer peer.Close()
	held, err1 := peer.Stat()
	now, err2 := os.Stat(filepath.Join(spool, WorkDir, "x"))
	if err1 != nil || err2 != nil || !os.SameFile(held, now) {
		t.Fatalf("the peer's lock is not on work/x any more (%v, %v)", err1, err2)
	}
	// Nobody else can lock it while the peer holds it.
	if l, err := lockDir(filepath.Join(spool, WorkDir, "x")); err == nil {
		l.Close()
		t.Fatal("a second lock on the peer's folder succeeded")
	}
}
