package daemon

import (
	"bytes"
	"context"
	"encoding/json"
	"html"
	"image"
	"image/color"
	"image/png"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/kspaced/kspaced/internal/testutil"
	"github.com/kspaced/kspaced/pacs"
	"github.com/kspaced/kspaced/pipeline"
	"github.com/kspaced/kspaced/qc"
)

// tinyPNG is a real 4×2 PNG, as a preview would be.
func tinyPNG(t testing.TB) []byte {
	t.Helper()
	img := image.NewGray(image.Rect(0, 0, 4, 2))
	img.Set(1, 1, color.Gray{Y: 200})
	var b bytes.Buffer
	if err := png.Encode(&b, img); err != nil {
		t.Fatal(err)
	}
	return b.Bytes()
}

// pageProc writes previews like pipeline.Run (previews/<input>/preview_NNNN.png),
// fails inputs named bad*, and holds inputs named slow* at 2 of 5 slices
// until release is closed.
func pageProc(t testing.TB, release <-chan struct{}) Processor {
	pngData := tinyPNG(t)
	return func(ctx context.Context, job pipeline.Job, out string, p pipeline.Progress) (*pipeline.Report, error) {
		base := strings.TrimSuffix(filepath.Base(job.Inputs[0]), ".npy")
		switch {
		case strings.HasPrefix(base, "bad"):
			return nil, pipeline.ErrBadInput
		case strings.HasPrefix(base, "slow"):
			p(2, 5)
			select {
			case <-release:
			case <-ctx.Done():
				return nil, ctx.Err()
			}
		}
		dir := filepath.Join(out, "previews", base)
		if err := os.MkdirAll(dir, 0o755); err != nil {
			return nil, err
		}
		var outs []string
		for i := 1; i <= 3; i++ {
			f := filepath.Join(dir, "preview_000"+string(rune('0'+i))+".png")
			if err := os.WriteFile(f, pngData, 0o644); err != nil {
				return nil, err
			}
			outs = append(outs, f)
		}
		rep := &pipeline.Report{Method: "zero-filled", Slices: 3, Residual: []float64{0, 0, 0}, Outputs: outs}
		if base == "knee_8x" {
			rep.QC = &pipeline.QCReport{Status: "check", Flags: []qc.Flag{{Code: qc.CodeMotion, Reason: "knee_8x.npy: motion suspected (slice 1)"}}}
		}
		return rep, nil
	}
}

func writeDelivery(t testing.TB, spool string, st pacs.State, fd *pacs.FailedDelivery) {
	t.Helper()
	dir := filepath.Join(spool, pacs.DeliveryDir, st.Job)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	write := func(name string, v any) {
		raw, err := json.Marshal(v)
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, name), raw, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	write(st.Destination+".json", st)
	if fd != nil {
		write(st.Destination+".failed-delivery.json", fd)
	}
}

func getPage(t testing.TB, h http.Handler, target string) (int, http.Header, string) {
	t.Helper()
	w := httptest.NewRecorder()
	h.ServeHTTP(w, httptest.NewRequest("GET", target, nil))
	b, _ := io.ReadAll(w.Result().Body)
	return w.Code, w.Result().Header, string(b)
}

// text is what a person reads of an HTML page: tags dropped, spaces folded.
func text(page string) string {
	s := regexp.MustCompile(`</?(span|b|a)\b[^>]*>`).ReplaceAllString(page, "")
	s = regexp.MustCompile(`(?s)<style.*?</style>|<[^>]*>`).ReplaceAllString(s, " ")
	return html.UnescapeString(strings.Join(strings.Fields(s), " "))
}

// The page shows the queue, a running job's progress, a finished job with
// its previews (served as PNG), a failure in words and the delivery state
// per destination, all escaped, with no JavaScript.
func TestStatusPage(t *testing.T) {
	spool := t.TempDir()
	release := make(chan struct{})
	defer close(release)
	c := testConfig(spool)
	r := start(t, c, pageProc(t, release), false)
	h := r.d.Handler()

	drop(t, spool, "knee_8x.npy", []byte("k"))
	drop(t, spool, "bad_scan.npy", []byte("k"))
	testutil.WaitUntil(t, 10*time.Second, "two jobs filed", func() bool {
		return len(testutil.Names(t, filepath.Join(spool, DoneDir)))+len(testutil.Names(t, filepath.Join(spool, FailedDir))) == 2
	})
	// One job running, holding one worker at 2/5; the other worker is busy
	// with a second slow job, so the next drop waits ready in the queue.
	drop(t, spool, "slow_a.npy", []byte("k"))
	drop(t, spool, "slow_b.npy", []byte("k"))
	testutil.WaitUntil(t, 10*time.Second, "two jobs at 2/5", func() bool {
		n := 0
		for _, j := range r.d.Status() {
			if j.Progress == "2/5" {
				n++
			}
		}
		return n == 2
	})
	drop(t, spool, "queued<b>.npy", []byte("k"))
	// A .cfl without its .hdr waits as still arriving.
	drop(t, spool, "arriving.cfl", []byte("k"))
	writeDelivery(t, spool, pacs.State{Job: "knee_8x", Destination: "main", State: pacs.StateDelivered,
		Files: []string{"a.dcm", "b.dcm"}, Stored: 2, Attempts: 1, Finished: time.Now()}, nil)
	writeDelivery(t, spool, pacs.State{Job: "knee_8x", Destination: "backup", State: pacs.StateFailed, Attempts: 9},
		&pacs.FailedDelivery{Job: "knee_8x", Destination: "backup",
			Message: "The results of job knee_8x were NOT delivered to backup.", Action: "Check that backup is reachable."})
	writeDelivery(t, spool, pacs.State{Job: "knee_8x", Destination: "web", State: pacs.StatePending, Attempts: 2,
		NextAttempt: time.Now().Add(time.Minute), LastError: "connection refused"}, nil)

	var body string
	testutil.WaitUntil(t, 5*time.Second, "one ready and one arriving on the page", func() bool {
		_, _, body = getPage(t, h, "/")
		return strings.Contains(text(body), "Waiting: 2 in the queue") && strings.Contains(body, "ready, waiting for a worker")
	})
	code, hdr, body := getPage(t, h, "/")
	if code != 200 || !strings.HasPrefix(hdr.Get("Content-Type"), "text/html") {
		t.Fatalf("GET / = %d %s", code, hdr.Get("Content-Type"))
	}
	txt := text(body)
	bad := readFailure(t, spool, "bad_scan")
	for _, want := range []string{
		"Taking jobs.", "Waiting: 2 in the queue", "queued<b>.npy", "ready, waiting for a worker",
		"arriving.cfl", "still arriving (not complete yet)",
		"In progress: 2", "slow_a", "40% done", "so far",
		"knee_8x", "3 slices", "knee_8x, slice 2 of 3. Left to right: zero-filled, reconstruction, uncertainty",
		"main: delivered, 2 of 2 images", "backup: NOT delivered after 9 attempts. The results of job knee_8x were NOT delivered to backup. Check that backup is reachable.",
		"web: pending, 2 attempts so far", "connection refused", "QC: check before reading.", "knee_8x.npy: motion suspected (slice 1)",
		"bad_scan", bad.Message, "What to do: " + bad.Action, "bad_input",
	} {
		if !strings.Contains(txt, want) {
			t.Errorf("page text lacks %q\n%s", want, txt)
		}
	}
	if strings.Contains(body, "queued<b>") || strings.Contains(body, "<script") {
		t.Errorf("page is not escaped or carries script:\n%s", body)
	}
	for _, want := range []string{`name="viewport"`, `http-equiv="refresh"`, `<progress max="5" value="2">`,
		`<img src="/previews/knee_8x/knee_8x/preview_0002.png"`} {
		if !strings.Contains(body, want) {
			t.Errorf("page lacks %s", want)
		}
	}
	// Local time with the date.
	if !strings.Contains(txt, time.Now().Local().Format("2006-01-02")) {
		t.Errorf("page shows no local date")
	}
	// The flag is counted by code, the job by QC status.
	_, _, metrics := getPage(t, h, "/metrics")
	for _, want := range []string{`kspaced_qc_flagged_jobs_total{code="motion"} 1`, `kspaced_qc_jobs_total{status="check"} 1`} {
		if !strings.Contains(metrics, want) {
			t.Errorf("/metrics lacks %s", want)
		}
	}
	code, hdr, img := getPage(t, h, "/previews/knee_8x/knee_8x/preview_0002.png")
	if code != 200 || hdr.Get("Content-Type") != "image/png" || img != string(tinyPNG(t)) {
		t.Errorf("preview = %d %s, %d bytes", code, hdr.Get("Content-Type"), len(img))
	}
	// Read-only: nothing but GET (and HEAD) is served.
	w := httptest.NewRecorder()
	h.ServeHTTP(w, httptest.NewRequest("POST", "/", nil))
	if w.Code != http.StatusMethodNotAllowed {
		t.Errorf("POST / = %d, want 405", w.Code)
	}
}

// The preview handler serves regular PNG files under outbox/<job>/previews/
// and refuses every way out: dot-dot, encoded slashes, links (inside the
// outbox too), FIFOs, folders and other file types.
func TestPreviewPathsRefused(t *testing.T) {
	spool := t.TempDir()
	d, err := New(Options{Config: testConfig(spool), Processor: pageProc(t, nil)})
	if err != nil {
		t.Fatal(err)
	}
	h := d.Handler()
	secret := "SECRET-NOT-A-PREVIEW"
	mk := func(p, data string) {
		t.Helper()
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(data), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	prev := filepath.Join(spool, OutboxDir, "job", "previews", "in")
	mk(filepath.Join(prev, "preview_0001.png"), "PNG")
	mk(filepath.Join(spool, OutboxDir, "job", "report.json"), `{"secret":"`+secret+`"}`)
	mk(filepath.Join(spool, OutboxDir, "job", "secret.png"), secret)
	mk(filepath.Join(spool, DoneDir, "other", "input", "x.png"), secret)
	mk(filepath.Join(spool, OutboxDir, "other", "previews", "in", "preview_0001.png"), secret+"-other-job")
	mk(filepath.Join(prev, "notes.txt"), secret)
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	must(os.Symlink("/etc/passwd", filepath.Join(prev, "passwd.png")))
	must(os.Symlink(filepath.Join(spool, OutboxDir, "other", "previews", "in", "preview_0001.png"), filepath.Join(prev, "other.png")))
	must(os.Symlink(filepath.Join(spool, OutboxDir, "other", "previews", "in"), filepath.Join(spool, OutboxDir, "job", "previews", "linkdir")))
	must(os.Symlink(filepath.Join(spool, OutboxDir, "other"), filepath.Join(spool, OutboxDir, "linkjob")))
	must(syscall.Mkfifo(filepath.Join(prev, "fifo.png"), 0o644))
	must(os.MkdirAll(filepath.Join(prev, "dir.png"), 0o755))

	if code, _, body := getPage(t, h, "/previews/job/in/preview_0001.png"); code != 200 || body != "PNG" {
		t.Fatalf("the real preview = %d %q", code, body)
	}
	for _, target := range []string{
		"/previews/job/../secret.png",
		"/previews/job/in/../../secret.png",
		"/previews/job/in/..%2F..%2Fsecret.png",
		"/previews/job/in%2F..%2F..%2Fsecret.png",
		"/previews/job/..%2F..%2Fdone%2Fother%2Finput%2Fx.png",
		"/previews/..%2Fdone%2Fother%2Finput/x.png",
		"/previews/..%2Foutbox%2Fjob/secret.png",
		"/previews/%2E%2E/job/secret.png",
		"/previews/job/%2Fetc%2Fpasswd.png",
		"/previews/job/in/passwd.png",
		"/previews/job/in/other.png",
		"/previews/job/linkdir/preview_0001.png",
		"/previews/linkjob/in/preview_0001.png",
		"/previews/job/in/fifo.png",
		"/previews/job/in/dir.png",
		"/previews/job/in/notes.txt",
		"/previews/job/in/.%2Fpreview_0001.png",
		"/previews/job/in//preview_0001.png",
		"/previews/job/in/preview_0001.png%00.txt",
		"/previews/job/in\\..\\..\\secret.png",
		"/previews/job/report.json",
	} {
		done := make(chan struct{})
		var code int
		var body string
		go func() { defer close(done); code, _, body = getPage(t, h, target) }()
		select {
		case <-done:
		case <-time.After(5 * time.Second):
			t.Fatalf("GET %s hangs", target)
		}
		if code == 200 || strings.Contains(body, secret) || strings.Contains(body, "root:") {
			t.Errorf("GET %s = %d %q, want refused", target, code, body)
		}
	}
}
