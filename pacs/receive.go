package pacs

import (
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/kspaced/kspaced/configs"
	"github.com/kspaced/kspaced/internal/safefile"
	"github.com/kspaced/kspaced/pacs/dimse"
)

// maxPerStudy bounds the instances one received folder may hold; the inbox
// takes study folders of up to 20,000 files.
const maxPerStudy = 20000

// Receiver stores what a C-STORE listener receives into SPOOL/inbox: each
// association's instances are written into a hidden folder there (which
// the daemon ignores) and, when the association ends, renamed in one step to
// a visible study folder with a .ready marker. With a quiet period, the
// associations of one calling AE title that follow each other within it
// share one folder, which moves in once the quiet period has passed with
// none open.
type Receiver struct {
	inbox    string
	log      *slog.Logger
	received *prometheus.CounterVec
	// Quiet is the quiet period; 0 closes a folder at its association's end.
	Quiet time.Duration

	mu     sync.Mutex
	groups map[string]*session // open folders by calling AE (Quiet > 0)
}

// NewReceiver prepares a receiver for spool's inbox.
func NewReceiver(spool string, log *slog.Logger) (*Receiver, error) {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	inbox := filepath.Join(spool, "inbox")
	if err := os.MkdirAll(inbox, 0o755); err != nil {
		return nil, fmt.Errorf("receiver: %w", err)
	}
	return &Receiver{inbox: inbox, log: log, groups: map[string]*session{}, received: prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "kspaced_received_instances_total",
		Help: "DICOM instances received by the C-STORE listener, by calling AE title and result (stored, refused)."},
		[]string{"calling_ae", "result"})}, nil
}

// Collectors are the receiver's metrics.
func (r *Receiver) Collectors() []prometheus.Collector { return []prometheus.Collector{r.received} }

// Server is the dimse.Server for cfg storing into r.
func (r *Receiver) Server(cfg configs.Listen, timeout time.Duration) *dimse.Server {
	return &dimse.Server{
		AETitle: cfg.AETitle, Callers: cfg.Callers, Open: r.open, Timeout: timeout,
		MaxInstance: int64(cfg.MaxInstanceMB) << 20, MaxAssociations: cfg.MaxAssociations, Log: r.log,
	}
}

func randomHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

// safeName keeps what is safe in a file name from an AE title.
func safeName(s string) string {
	return strings.Map(func(c rune) rune {
		if c >= 'A' && c <= 'Z' || c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '-' || c == '_' {
			return c
		}
		return '_'
	}, strings.TrimSpace(s))
}

// stageLock is held (flock) in a staging folder while its association
// lives; the kernel drops it if the process dies.
const stageLock = ".lock"

func (r *Receiver) open(calling string, remote net.Addr) (dimse.Session, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if s := r.groups[calling]; s != nil {
		s.mu.Lock()
		if !s.closed {
			s.active++
			if s.timer != nil {
				s.timer.Stop()
				s.timer = nil
			}
			s.mu.Unlock()
			r.log.Info("DICOM association accepted", "calling_ae", calling, "remote", remote.String(), "folder", s.name, "joins", true)
			return s, nil
		}
		s.mu.Unlock()
	}
	name := fmt.Sprintf("rx-%s-%s-%s", time.Now().UTC().Format("20060102T150405"), safeName(calling), randomHex(3))
	stage := filepath.Join(r.inbox, "."+name+".part")
	if err := os.Mkdir(stage, 0o755); err != nil {
		return nil, err
	}
	unlock, err := lockFile(filepath.Join(stage, stageLock))
	if err != nil {
		os.RemoveAll(stage)
		return nil, err
	}
	s := &session{r: r, calling: calling, name: name, stage: stage, unlock: unlock, active: 1}
	if r.Quiet > 0 {
		r.groups[calling] = s
	}
	r.log.Info("DICOM association accepted", "calling_ae", calling, "remote", remote.String(), "folder", name)
	return s, nil
}

// Recover moves studies whose association was cut by a crash (a staging
// folder nobody holds) into the inbox: their instances were acknowledged,
// so they must not be lost. serve calls it at start.
func (r *Receiver) Recover() {
	stages, _ := filepath.Glob(filepath.Join(r.inbox, ".rx-*.part"))
	for _, stage := range stages {
		unlock, err := lockFile(filepath.Join(stage, stageLock))
		if err != nil {
			continue // a live association
		}
		name := strings.TrimSuffix(strings.TrimPrefix(filepath.Base(stage), "."), ".part")
		r.log.Warn("recovering a study whose association was cut by a crash", "folder", name)
		(&session{r: r, calling: "?", name: name, stage: stage, unlock: unlock}).finish()
	}
}

// Flush moves in every folder waiting for its quiet period: at shutdown,
// after the listener has stopped.
func (r *Receiver) Flush() {
	r.mu.Lock()
	var open []*session
	for _, s := range r.groups {
		open = append(open, s)
	}
	r.mu.Unlock()
	for _, s := range open {
		s.mu.Lock()
		if s.timer != nil {
			s.timer.Stop()
			s.timer = nil
		}
		s.mu.Unlock()
		s.finish()
	}
}

// session is one folder being received: one association's, or with a quiet
// period those of one calling AE in a row.
type session struct {
	r       *Receiver
	calling string
	name    string
	stage   string
	unlock  func()
	mu      sync.Mutex
	n       int
	active  int         // associations writing into it
	timer   *time.Timer // quiet period running
	closed  bool
	cut     bool // an association ended without a release
}

func (s *session) Store(class, instance, ts string) (io.WriteCloser, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.n >= maxPerStudy {
		s.r.received.WithLabelValues(s.calling, "refused").Inc()
		return nil, fmt.Errorf("more than %d instances in one received study", maxPerStudy)
	}
	s.n++
	final := filepath.Join(s.stage, fmt.Sprintf("IM%05d.dcm", s.n))
	f, err := os.OpenFile(final+".part", os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o644)
	if err != nil {
		return nil, err
	}
	if err := dimse.WriteMeta(f, class, instance, ts, s.calling); err != nil {
		f.Close()
		os.Remove(f.Name())
		return nil, err
	}
	return &instanceFile{f: f, final: final, s: s}, nil
}

// End is called when one association ends. The folder moves into the
// inbox when no association writes into it any more (after the quiet
// period, if any): what was acknowledged is kept even if the association
// was aborted afterwards.
func (s *session) End(released bool) {
	s.mu.Lock()
	s.active--
	s.cut = s.cut || !released
	if s.active > 0 {
		s.mu.Unlock()
		return
	}
	if s.r.Quiet > 0 {
		s.timer = time.AfterFunc(s.r.Quiet, s.finish)
		s.mu.Unlock()
		return
	}
	s.mu.Unlock()
	s.finish()
}

// finish moves the folder into the inbox, unless an association joined it
// meanwhile.
func (s *session) finish() {
	s.r.mu.Lock()
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.active > 0 || s.closed {
		s.r.mu.Unlock()
		return
	}
	s.closed = true
	if s.r.groups[s.calling] == s {
		delete(s.r.groups, s.calling)
	}
	s.r.mu.Unlock()
	defer s.unlock()
	files, _ := filepath.Glob(filepath.Join(s.stage, "IM*.dcm"))
	if len(files) == 0 {
		os.RemoveAll(s.stage)
		s.r.log.Info("DICOM association ended with nothing stored", "calling_ae", s.calling, "released", !s.cut)
		return
	}
	// Partial instances (never acknowledged) are dropped.
	parts, _ := filepath.Glob(filepath.Join(s.stage, "*.part"))
	for _, p := range parts {
		os.Remove(p)
	}
	err := func() error {
		m, err := os.Create(filepath.Join(s.stage, ".ready"))
		if err != nil {
			return err
		}
		if err := m.Close(); err != nil {
			return err
		}
		if err := safefile.SyncDir(s.stage); err != nil {
			return err
		}
		if err := os.Rename(s.stage, filepath.Join(s.r.inbox, s.name)); err != nil {
			return err
		}
		return safefile.SyncDir(s.r.inbox)
	}()
	if err != nil {
		s.r.log.Error("received study could not be moved into the inbox; it stays in the hidden folder", "folder", filepath.Base(s.stage), "err", err)
		return
	}
	s.r.log.Info("received study in the inbox", "folder", s.name, "instances", len(files), "calling_ae", s.calling, "released", !s.cut)
}

type instanceFile struct {
	f     *os.File
	final string
	s     *session
}

func (w *instanceFile) Write(p []byte) (int, error) { return w.f.Write(p) }

// Close commits the instance durably before it is acknowledged.
func (w *instanceFile) Close() error {
	err := w.f.Sync()
	if cerr := w.f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(w.f.Name(), w.final)
	}
	if err != nil {
		os.Remove(w.f.Name())
		w.s.r.received.WithLabelValues(w.s.calling, "refused").Inc()
		return fmt.Errorf("store received instance: %w", err)
	}
	w.s.r.received.WithLabelValues(w.s.calling, "stored").Inc()
	return nil
}

// Discard drops a partial instance.
func (w *instanceFile) Discard() {
	w.f.Close()
	if err := os.Remove(w.f.Name()); err != nil && !errors.Is(err, os.ErrNotExist) {
		w.s.r.log.Warn("remove partial instance", "err", err)
	}
	w.s.r.received.WithLabelValues(w.s.calling, "refused").Inc()
}
