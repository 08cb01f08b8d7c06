package pacs

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/kspaced/kspaced/configs"
	"github.com/kspaced/kspaced/internal/peers"
	"github.com/kspaced/kspaced/pacs/dimse"
)

// startListener serves a receiver for spool on a loopback port.
func startListener(t testing.TB, spool string, mutate func(*configs.Listen)) (*Receiver, string, *bytes.Buffer) {
	t.Helper()
	var logs bytes.Buffer
	r, err := NewReceiver(spool, slog.New(slog.NewTextHandler(&logs, nil)))
	if err != nil {
		t.Fatal(err)
	}
	cfg := configs.Default().PACS.Listen
	cfg.Callers = []string{"SENDER"}
	if mutate != nil {
		mutate(&cfg)
	}
	r.Quiet = cfg.QuietPeriod
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- r.Server(cfg, 10*time.Second).Serve(ctx, ln) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Error(err)
		}
	})
	return r, ln.Addr().String(), &logs
}

// dcmtk's storescu and echoscu against kspaced's listener: a study sent by
// an allowed AE arrives in the inbox as one ready folder with every
// instance, UIDs and pixels intact; other calling or called AE titles are
// rejected and leave nothing.
func TestReceiveFromStoreSCU(t *testing.T) {
	storescu := peers.Need(t, "storescu")
	echoscu := peers.Need(t, "echoscu")
	spool := t.TempDir()
	_, addr, logs := startListener(t, spool, nil)
	host, port, _ := net.SplitHostPort(addr)

	if out, err := exec.Command(echoscu, "-aet", "SENDER", "-aec", "KSPACED", host, port).CombinedOutput(); err != nil {
		t.Fatalf("echoscu: %v\n%s", err, out)
	}
	if out, err := exec.Command(echoscu, "-aet", "INTRUDER", "-aec", "KSPACED", host, port).CombinedOutput(); err == nil {
		t.Errorf("echoscu from an unknown AE succeeded: %s", out)
	}
	if out, err := exec.Command(echoscu, "-aet", "SENDER", "-aec", "OTHER", host, port).CombinedOutput(); err == nil {
		t.Errorf("echoscu to another AE title succeeded: %s", out)
	}

	src := t.TempDir()
	var files []string
	for _, r := range peers.Series(t, src, 3) {
		files = append(files, r.Files...)
	}
	out, err := exec.Command(storescu, append([]string{"-aet", "INTRUDER", "-aec", "KSPACED", host, port}, files...)...).CombinedOutput()
	if err == nil && !strings.Contains(string(out), "Rejected") {
		t.Errorf("storescu from an unknown AE: %v %s", err, out)
	}
	if out, err := exec.Command(storescu, append([]string{"-aet", "SENDER", "-aec", "KSPACED", host, port}, files...)...).CombinedOutput(); err != nil {
		t.Fatalf("storescu: %v\n%s", err, out)
	}
	es, _ := os.ReadDir(filepath.Join(spool, "inbox"))
	if len(es) != 1 || !strings.HasPrefix(es[0].Name(), "rx-") || !strings.Contains(es[0].Name(), "SENDER") {
		t.Fatalf("inbox = %v, want one rx-…-SENDER-… folder", es)
	}
	dir := filepath.Join(spool, "inbox", es[0].Name())
	if _, err := os.Stat(filepath.Join(dir, ".ready")); err != nil {
		t.Error("received folder has no .ready marker")
	}
	got, _ := filepath.Glob(filepath.Join(dir, "*.dcm"))
	if len(got) != len(files) {
		t.Fatalf("received %d files, sent %d", len(got), len(files))
	}
	want := map[string]string{}
	for _, f := range files {
		uid, px := peers.UIDAndPixels(t, f)
		want[uid] = px
	}
	for _, f := range got {
		uid, px := peers.UIDAndPixels(t, f)
		if w, ok := want[uid]; !ok || w != px {
			t.Errorf("%s: instance %s not sent or pixels changed", filepath.Base(f), uid)
		}
		delete(want, uid)
		in, err := dimse.ReadInstance(f)
		if err != nil || in.SOPInstanceUID != uid {
			t.Errorf("%s: meta header %+v, %v", f, in, err)
		}
	}
	if strings.Contains(logs.String(), "Test^Patient") || strings.Contains(logs.String(), "PID-SECRET-1") {
		t.Error("listener logs name the patient")
	}
	if !strings.Contains(logs.String(), "calling AE title not configured") {
		t.Errorf("rejection not logged: %s", logs.String())
	}
}

// Our SCU against our SCP: an instance over the size limit is refused with
// 0xA700 and the association goes on; an abort after an acknowledged
// instance still delivers that instance.
func TestReceiveLimitsAndAbort(t *testing.T) {
	spool := t.TempDir()
	_, addr, _ := startListener(t, spool, func(l *configs.Listen) { l.MaxInstanceMB = 1 })
	src := t.TempDir()
	var insts []dimse.Instance
	for _, r := range peers.Series(t, src, 2) {
		for _, f := range r.Files {
			in, err := dimse.ReadInstance(f)
			if err != nil {
				t.Fatal(err)
			}
			insts = append(insts, in)
		}
	}
	// A 2 MiB instance: the first file's meta and data set, padded.
	big := filepath.Join(src, "big.dcm")
	raw, _ := os.ReadFile(insts[0].Path)
	raw = append(raw, make([]byte, 2<<20)...)
	os.WriteFile(big, raw, 0o644)
	bigIn, _ := dimse.ReadInstance(big)
	bigIn.SOPInstanceUID += ".9"

	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	p := dimse.Peer{Addr: addr, CalledAE: "KSPACED", CallingAE: "SENDER"}
	pcs, _ := dimse.ContextsFor(insts)
	a, err := dimse.Connect(ctx, p, pcs)
	if err != nil {
		t.Fatal(err)
	}
	var se *dimse.StatusError
	if err := a.Store(ctx, bigIn); !errors.As(err, &se) || se.Status != 0xA700 {
		t.Fatalf("oversized instance: %v", err)
	}
	if err := a.Store(ctx, insts[0]); err != nil {
		t.Fatalf("store after a refusal: %v", err)
	}
	a.Abort()
	deadline := time.Now().Add(10 * time.Second)
	for {
		got, _ := filepath.Glob(filepath.Join(spool, "inbox", "rx-*", "*.dcm"))
		if len(got) == 1 {
			if uid, _ := peers.UIDAndPixels(t, got[0]); uid != insts[0].SOPInstanceUID {
				t.Errorf("kept %s, want %s", uid, insts[0].SOPInstanceUID)
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("after the abort the inbox holds %v", got)
		}
		time.Sleep(20 * time.Millisecond)
	}
	if hidden, _ := filepath.Glob(filepath.Join(spool, "inbox", ".*")); len(hidden) != 0 {
		t.Errorf("staging left behind: %v", hidden)
	}
}

// A study whose association a crash cut short still reaches the inbox at the
// next start with what was acknowledged; a live association's is left alone.
func TestReceiveRecoversAfterCrash(t *testing.T) {
	spool := t.TempDir()
	r, err := NewReceiver(spool, nil)
	if err != nil {
		t.Fatal(err)
	}
	inbox := filepath.Join(spool, "inbox")
	dead := filepath.Join(inbox, ".rx-20260101T000000-SCANNER-aaaaaa.part")
	live := filepath.Join(inbox, ".rx-20260101T000000-SCANNER-bbbbbb.part")
	for _, d := range []string{dead, live} {
		os.MkdirAll(d, 0o755)
		os.WriteFile(filepath.Join(d, "IM00001.dcm"), []byte("acknowledged"), 0o644)
		os.WriteFile(filepath.Join(d, "IM00002.dcm.part"), []byte("half"), 0o644)
		os.WriteFile(filepath.Join(d, stageLock), nil, 0o644)
	}
	unlock, err := lockFile(filepath.Join(live, stageLock))
	if err != nil {
		t.Fatal(err)
	}
	defer unlock()
	r.Recover()
	got, _ := filepath.Glob(filepath.Join(inbox, "rx-20260101T000000-SCANNER-aaaaaa", "IM*"))
	ready, _ := filepath.Glob(filepath.Join(inbox, "rx-20260101T000000-SCANNER-aaaaaa", ".ready"))
	if len(got) != 1 || filepath.Base(got[0]) != "IM00001.dcm" || len(ready) != 1 {
		t.Errorf("recovered study holds %v (ready %v), want IM00001.dcm and .ready", got, ready)
	}
	if _, err := os.Stat(live); err != nil {
		t.Errorf("a live association's folder was taken: %v", err)
	}
}

// With a quiet period, a sender that opens one association per image gets
// one study folder; the folder moves in once the sender has been quiet,
// and the next burst makes another.
func TestReceiveQuietPeriodGathersAssociations(t *testing.T) {
	storescu := peers.Need(t, "storescu")
	spool := t.TempDir()
	r, addr, _ := startListener(t, spool, func(l *configs.Listen) { l.QuietPeriod = 1500 * time.Millisecond })
	host, port, _ := net.SplitHostPort(addr)
	var files []string
	for _, s := range peers.Series(t, t.TempDir(), 3) {
		files = append(files, s.Files...)
	}
	send := func(f string) {
		cmd := exec.Command(storescu, "-aet", "SENDER", "-aec", "KSPACED", host, port, f)
		cmd.Env = append(os.Environ(), "TCP_NODELAY=1")
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("storescu: %v %s", err, out)
		}
	}
	folders := func() []string {
		got, _ := filepath.Glob(filepath.Join(spool, "inbox", "rx-*"))
		return got
	}
	for _, f := range files[:4] {
		send(f)
		if len(folders()) != 0 {
			t.Fatal("a folder moved in during the burst")
		}
	}
	deadline := time.Now().Add(10 * time.Second)
	for len(folders()) == 0 && time.Now().Before(deadline) {
		time.Sleep(20 * time.Millisecond)
	}
	got := folders()
	if len(got) != 1 {
		t.Fatalf("after the quiet period: %v", got)
	}
	if ims, _ := filepath.Glob(filepath.Join(got[0], "IM*.dcm")); len(ims) != 4 {
		t.Errorf("first folder holds %d instances, want 4", len(ims))
	}
	send(files[4])
	r.Flush() // as at shutdown: no wait for the quiet period
	if got := folders(); len(got) != 2 {
		t.Errorf("after a second burst and a flush: %v", got)
	}
}
