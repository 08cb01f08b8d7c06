package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"html"
	"image/png"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/kspaced/kspaced/daemon"
	"github.com/kspaced/kspaced/internal/testutil"
)

// chromium runs headless Chromium on url with extra flags (--dump-dom or
// --screenshot) and returns its standard output.
func chromium(t *testing.T, bin, url string, flags ...string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	args := append([]string{"--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
		"--disable-background-networking", "--disable-component-update", "--disable-sync",
		"--disable-dev-shm-usage", "--hide-scrollbars", "--user-data-dir=" + t.TempDir()}, flags...)
	cmd := exec.CommandContext(ctx, bin, append(args, url)...)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	cmd.Env = append(os.Environ(), "HOME="+t.TempDir())
	if err := cmd.Run(); err != nil {
		t.Fatalf("chromium %v: %v\n%s", flags, err, errb.String())
	}
	return out.String()
}

// readable is the text a person reads of an HTML page.
func readable(page string) string {
	s := regexp.MustCompile(`</?(span|b|a)\b[^>]*>`).ReplaceAllString(page, "")
	s = regexp.MustCompile(`(?s)<style.*?</style>|<head>.*?</head>|<[^>]*>`).ReplaceAllString(s, " ")
	return html.UnescapeString(strings.Join(strings.Fields(s), " "))
}

func freeAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

// The status page through the real binary and a real browser: a finished
// job with its preview, a failed job's message and a scan still arriving,
// as headless Chromium renders them. With KSPACED_SCREENSHOTS=DIR the
// screenshots (desktop and phone width) are kept there (docs/status-page*.png).
func TestStatusPageInChromium(t *testing.T) {
	if testing.Short() {
		t.Skip("starts kspaced and Chromium")
	}
	browser := testutil.Tool(t, "chromium")
	makeFixtures(t)
	spool := mkSpool(t)
	cfg := writeConfig(t, t.TempDir(), "300ms")
	// A PACS that is down: the page says the delivery is pending and why.
	closed := freeAddr(t)
	host, port, _ := net.SplitHostPort(closed)
	appendConfig(t, cfg, "pacs:\n  destinations:\n    - {name: main-pacs, ae_title: PACS1, host: %s, port: %s}\n  retry_backoff: 1h\n  timeout: 2s\n", host, port)
	addr := freeAddr(t)
	startServer(t, "--config", cfg, "--spool", spool, "--http", addr)
	base := "http://" + addr

	put(t, spool, "knee_8x.npy", fixtures.npy)
	put(t, spool, "hip_4x.npy", fixtures.npy[:len(fixtures.npy)/2])
	testutil.WaitUntil(t, 60*time.Second, "one job done, one failed", func() bool {
		return len(testutil.Names(t, filepath.Join(spool, daemon.DoneDir))) == 1 && len(testutil.Names(t, filepath.Join(spool, daemon.FailedDir))) == 1
	})
	// A BART .cfl whose .hdr has not arrived waits in the inbox.
	put(t, spool, "spine_6x.cfl", fixtures.cfl)
	get := func(path string) string {
		resp, err := http.Get(base + path)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return string(b)
	}
	testutil.WaitUntil(t, 20*time.Second, "the waiting scan and the first delivery attempt on the page", func() bool {
		p := get("/")
		return strings.Contains(p, "spine_6x.cfl") && strings.Contains(p, "1 attempt so far")
	})

	dom := chromium(t, browser, base+"/", "--dump-dom")
	txt := readable(dom)
	var fail daemon.Failure
	raw, err := os.ReadFile(filepath.Join(spool, daemon.FailedDir, "hip_4x", "error.json"))
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(raw, &fail); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{
		"Taking jobs.", "Waiting: 1 in the queue", "spine_6x.cfl", "still arriving",
		"In progress: 0", "No job is running.",
		"Last results", "knee_8x", "zero-filled · 1 slice", "knee_8x, slice 1 of 1. Left to right: zero-filled, reconstruction",
		"main-pacs: pending, 1 attempt so far, next ", "connection refused",
		"Failures", "hip_4x", fail.Message, "What to do: " + fail.Action,
	} {
		if !strings.Contains(txt, want) {
			t.Errorf("Chromium shows no %q; it shows:\n%s", want, txt)
		}
	}
	img := regexp.MustCompile(`<img src="(/previews/knee_8x/[^"]+\.png)"`).FindStringSubmatch(dom)
	if img == nil {
		t.Fatalf("no preview image of knee_8x in the page:\n%s", dom)
	}
	// The image the browser loads is the PNG the job wrote.
	job, rest, _ := strings.Cut(strings.TrimPrefix(img[1], "/previews/"), "/")
	want, err := os.ReadFile(filepath.Join(spool, daemon.OutboxDir, job, "previews", filepath.FromSlash(rest)))
	if err != nil {
		t.Fatal(err)
	}
	if got := get(img[1]); got != string(want) {
		t.Errorf("GET %s: %d bytes, want the %d-byte preview", img[1], len(got), len(want))
	}
	for _, patient := range patientData {
		if strings.Contains(dom, patient) {
			t.Errorf("the page names the patient (%q)", patient)
		}
	}

	dir := os.Getenv("KSPACED_SCREENSHOTS")
	if dir == "" {
		dir = t.TempDir()
	}
	for _, shot := range []struct {
		file string
		w, h int
	}{{"status-page.png", 1280, 1000}, {"status-page-phone.png", 390, 1400}} {
		p, err := filepath.Abs(filepath.Join(dir, shot.file))
		if err != nil {
			t.Fatal(err)
		}
		chromium(t, browser, base+"/", fmt.Sprintf("--screenshot=%s", p), fmt.Sprintf("--window-size=%d,%d", shot.w, shot.h))
		f, err := os.Open(p)
		if err != nil {
			t.Fatalf("no screenshot: %v", err)
		}
		c, err := png.DecodeConfig(f)
		f.Close()
		if err != nil || c.Width < shot.w/2 {
			t.Errorf("screenshot %s: %+v, %v", shot.file, c, err)
		}
	}
}
