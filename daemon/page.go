package daemon

import (
	_ "embed"
	"encoding/json"
	"errors"
	"fmt"
	"html/template"
	"io"
	"io/fs"
	"net/http"
	"net/url"
	"os"
	"path"
	"path/filepath"
	"slices"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/kspaced/kspaced/pacs"
	"github.com/kspaced/kspaced/pipeline"
)

// The people's page at /: what is waiting, running, finished and failed,
// read from the daemon's memory (queue, running jobs) and from the spool
// (results, failures, deliveries), so it still tells the story after a
// restart. It shows job ids (input file names), never data from headers.

// pageResults and pageFailures bound what one page load reads from disk.
const (
	pageResults  = 12
	pageFailures = 12
	// maxRecord bounds report.json and error.json as the page reads them.
	maxRecord = 1 << 20
	// timeLayout is local time with the date: people compare it with the
	// scanner's clock, not with UTC.
	timeLayout = "2006-01-02 15:04:05 MST"
)

//go:embed page.html
var pageHTML string

var page = template.Must(template.New("page").Funcs(template.FuncMap{
	"when": func(t time.Time) string {
		if t.IsZero() {
			return ""
		}
		return t.Local().Format(timeLayout)
	},
	"dur": func(d time.Duration) string {
		if d < time.Minute {
			return d.Round(time.Second).String()
		}
		return d.Round(time.Minute).String()
	},
	"inc": func(i int) int { return i + 1 },
	// count writes "1 slice", "3 slices".
	"count": func(n int, noun string) string {
		if n == 1 {
			return "1 " + noun
		}
		return strconv.Itoa(n) + " " + noun + "s"
	},
	"pct": func(done, total int64) int64 {
		if total <= 0 {
			return 0
		}
		return 100 * done / total
	},
}).Parse(pageHTML))

type pageData struct {
	Now      time.Time
	Ready    bool
	Why      string
	Waiting  []pageWaiting
	Running  []pageRunning
	Results  []pageResult
	Failures []pageFailure
	Problems []string // what the page itself could not read
}

type pageWaiting struct {
	Name  string
	State string
	Seen  time.Time
}

type pageRunning struct {
	ID, Input, Method, State, Message string
	Done, Total                       int64
	Started                           time.Time
	Elapsed                           time.Duration
}

type pageResult struct {
	ID         string
	Finished   time.Time
	Method     string
	Slices     int
	Warnings   int
	Previews   []pagePreview
	Deliveries []pageDelivery
	// QC is "" when the report has none (older reports), "ok" or "check";
	// QCFlags are its reasons in words.
	QC      string
	QCFlags []string
}

// pagePreview is one input's previews: the middle slice shown, all linked.
type pagePreview struct {
	Name  string
	Shown string // URL of the image shown
	Slice int    // 1-based slice of Shown
	All   []string
}

type pageDelivery struct {
	Destination, State, Detail string
	Stored, Files, Attempts    int
	When                       time.Time
}

type pageFailure struct {
	ID, Input, Outcome, Message, Action string
	Time                                time.Time
	Attempts                            int
}

// pageData gathers what / shows.
func (d *Daemon) pageData() pageData {
	now := time.Now()
	p := pageData{Now: now}
	p.Ready, p.Why = d.Ready()
	d.board.mu.Lock()
	jobs := slices.Clone(d.board.jobs)
	d.board.mu.Unlock()
	// claimedAt is when each input was last claimed: an entry handed to a
	// worker is listed as waiting only until its job starts.
	claimedAt := map[string]time.Time{}
	boardMu.Lock()
	for _, r := range jobs {
		if r.Started.After(claimedAt[r.Input]) {
			claimedAt[r.Input] = r.Started
		}
		if !r.Finished.IsZero() {
			continue
		}
		p.Running = append(p.Running, pageRunning{ID: r.ID, Input: r.Input, Method: r.Method, State: r.State,
			Message: r.Message, Done: r.done.Load(), Total: r.total.Load(), Started: r.Started, Elapsed: now.Sub(r.Started)})
	}
	boardMu.Unlock()

	d.mu.Lock()
	for _, c := range d.recovered {
		p.Waiting = append(p.Waiting, pageWaiting{Name: c.entry, State: "recovered after a restart, waiting for a worker", Seen: c.seen})
	}
	for _, e := range d.entries {
		switch {
		case e.state == queued || e.state == taken && claimedAt[e.name].Before(e.seen):
			p.Waiting = append(p.Waiting, pageWaiting{Name: e.name, State: "ready, waiting for a worker", Seen: e.seen})
		case e.state == pending:
			p.Waiting = append(p.Waiting, pageWaiting{Name: e.name, State: "still arriving (not complete yet)", Seen: e.seen})
		}
	}
	d.mu.Unlock()
	sort.Slice(p.Waiting, func(i, k int) bool {
		a, b := p.Waiting[i], p.Waiting[k]
		if !a.Seen.Equal(b.Seen) {
			return a.Seen.Before(b.Seen)
		}
		return a.Name < b.Name
	})

	outbox := d.path(OutboxDir)
	ids, err := newest(outbox, pageResults)
	if err != nil {
		p.Problems = append(p.Problems, err.Error())
	}
	for _, id := range ids {
		r, err := d.readResult(outbox, id)
		if err != nil {
			p.Problems = append(p.Problems, err.Error())
		}
		p.Results = append(p.Results, r)
	}
	failed := d.path(FailedDir)
	ids, err = newest(failed, pageFailures)
	if err != nil {
		p.Problems = append(p.Problems, err.Error())
	}
	for _, id := range ids {
		f := pageFailure{ID: id}
		var rec Failure
		if err := readJSON(filepath.Join(failed, id, errorFile), &rec); err != nil {
			f.Message = "No error record (error.json) could be read for this job."
			p.Problems = append(p.Problems, err.Error())
		} else {
			f.Input, f.Outcome, f.Message, f.Action, f.Time, f.Attempts = rec.Input, rec.Outcome, rec.Message, rec.Action, rec.Time, rec.Attempts
		}
		p.Failures = append(p.Failures, f)
	}
	return p
}

// readResult reads what the page shows of outbox/<id>: the report, the
// previews and the delivery state. It returns what it could read.
func (d *Daemon) readResult(outbox, id string) (pageResult, error) {
	r := pageResult{ID: id}
	var rep pipeline.Report
	var errs []error
	if err := readJSON(filepath.Join(outbox, id, pipeline.ReportFile), &rep); err != nil {
		errs = append(errs, err)
	} else {
		r.Finished, r.Method, r.Slices, r.Warnings = rep.Finished, rep.Method, rep.Slices, len(rep.Warnings)
		if rep.QC != nil {
			r.QC = rep.QC.Status
			for _, f := range rep.QC.Flags {
				r.QCFlags = append(r.QCFlags, f.Reason)
			}
		}
	}
	pv, err := listPreviews(filepath.Join(outbox, id, previewsDir), id)
	if err != nil {
		errs = append(errs, err)
	}
	r.Previews = pv
	states, fails, err := pacs.JobStates(d.spool, id)
	if err != nil {
		errs = append(errs, err)
	}
	for i, st := range states {
		dl := pageDelivery{Destination: st.Destination, State: st.State, Stored: st.Stored, Files: len(st.Files),
			Attempts: st.Attempts, When: st.Finished}
		switch {
		case st.State == pacs.StateFailed && fails[i] != nil:
			dl.Detail = fails[i].Message + " " + fails[i].Action
		case st.State == pacs.StatePending:
			dl.When = st.NextAttempt
			dl.Detail = st.LastError
		}
		r.Deliveries = append(r.Deliveries, dl)
	}
	return r, errors.Join(errs...)
}

// previewsDir is where pipeline writes a job's PNG previews:
// outbox/<job>/previews/<input>/preview_0001.png.
const previewsDir = "previews"

// maxPreviewFiles bounds the previews listed per input.
const maxPreviewFiles = 4096

func listPreviews(dir, id string) ([]pagePreview, error) {
	des, err := os.ReadDir(dir)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("previews of %s: %w", id, err)
	}
	var out []pagePreview
	for _, de := range des {
		if !de.IsDir() {
			continue
		}
		files, err := os.ReadDir(filepath.Join(dir, de.Name()))
		if err != nil {
			return out, fmt.Errorf("previews of %s: %w", id, err)
		}
		pv := pagePreview{Name: de.Name()}
		for _, f := range files {
			if f.Type().IsRegular() && strings.HasSuffix(f.Name(), ".png") && len(pv.All) < maxPreviewFiles {
				pv.All = append(pv.All, previewURL(id, de.Name(), f.Name()))
			}
		}
		if len(pv.All) == 0 {
			continue
		}
		mid := (len(pv.All) - 1) / 2
		pv.Shown, pv.Slice = pv.All[mid], mid+1
		out = append(out, pv)
	}
	return out, nil
}

func previewURL(parts ...string) string {
	esc := make([]string, len(parts))
	for i, p := range parts {
		esc[i] = url.PathEscape(p)
	}
	return "/previews/" + strings.Join(esc, "/")
}

// newest lists the (at most n) most recently changed folders in dir, newest
// first.
func newest(dir string, n int) ([]string, error) {
	des, err := os.ReadDir(dir)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("list %s: %w", filepath.Base(dir), err)
	}
	type dirTime struct {
		name string
		t    time.Time
	}
	var all []dirTime
	for _, de := range des {
		if !de.IsDir() || strings.HasPrefix(de.Name(), ".") {
			continue
		}
		fi, err := de.Info()
		if err != nil {
			continue // removed since the listing
		}
		all = append(all, dirTime{de.Name(), fi.ModTime()})
	}
	sort.Slice(all, func(i, k int) bool {
		if !all[i].t.Equal(all[k].t) {
			return all[i].t.After(all[k].t)
		}
		return all[i].name > all[k].name
	})
	var out []string
	for _, e := range all[:min(n, len(all))] {
		out = append(out, e.name)
	}
	return out, nil
}

// readJSON decodes a small record file, refusing links and oversized files.
func readJSON(p string, v any) error {
	fi, err := os.Lstat(p)
	if err != nil {
		return fmt.Errorf("read %s: %w", p, err)
	}
	if !fi.Mode().IsRegular() {
		return fmt.Errorf("read %s: not a regular file", p)
	}
	f, err := os.Open(p)
	if err != nil {
		return fmt.Errorf("read %s: %w", p, err)
	}
	defer f.Close()
	if err := json.NewDecoder(io.LimitReader(f, maxRecord)).Decode(v); err != nil {
		return fmt.Errorf("read %s: %w", p, err)
	}
	return nil
}

// servePage writes the people's page.
func (d *Daemon) servePage(w http.ResponseWriter, _ *http.Request) {
	p := d.pageData()
	for i, e := range p.Problems {
		p.Problems[i] = d.clean(errors.New(e))
		d.log.Debug("status page: cannot read", "err", p.Problems[i])
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	w.Header().Set("Content-Security-Policy", "default-src 'none'; img-src 'self'; style-src 'unsafe-inline'")
	w.Header().Set("X-Content-Type-Options", "nosniff")
	if err := page.Execute(w, p); err != nil {
		d.log.Error("status page", "err", err)
	}
}

// servePreview serves a PNG under outbox/<job>/previews/ and nothing else:
// the job id and the path below previews/ must be local names, every folder
// on the way a real folder (no links), and the file a regular file.
func (d *Daemon) servePreview(w http.ResponseWriter, r *http.Request) {
	job, rest := r.PathValue("job"), r.PathValue("path")
	if !validJobID(job) || !filepath.IsLocal(rest) || path.Clean(rest) != rest || !strings.HasSuffix(rest, ".png") ||
		strings.Contains(rest, "\\") {
		http.NotFound(w, r)
		return
	}
	f, err := openBelow(d.path(OutboxDir), append([]string{job, previewsDir}, strings.Split(rest, "/")...))
	if err != nil {
		http.NotFound(w, r)
		return
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil || !fi.Mode().IsRegular() {
		http.NotFound(w, r)
		return
	}
	w.Header().Set("Content-Type", "image/png")
	w.Header().Set("X-Content-Type-Options", "nosniff")
	w.Header().Set("Cache-Control", "no-cache")
	http.ServeContent(w, r, "", fi.ModTime(), f)
}

// validJobID is a job id as jobID makes them: a single local name.
func validJobID(id string) bool {
	return id != "" && id != "." && id != ".." && !strings.ContainsAny(id, "/\\") && filepath.IsLocal(id)
}

// openBelow opens root/parts… refusing a symbolic link at every step
// (os.Root would follow links that stay inside the outbox, into another
// job's folder; the page never needs one).
func openBelow(root string, parts []string) (*os.File, error) {
	p := root
	for i, part := range parts {
		if part == "" || part == "." || part == ".." {
			return nil, fmt.Errorf("open %s: bad path", root)
		}
		p = filepath.Join(p, part)
		fi, err := os.Lstat(p)
		if err != nil {
			return nil, err
		}
		last := i == len(parts)-1
		if fi.Mode()&fs.ModeSymlink != 0 || (!last && !fi.IsDir()) || (last && !fi.Mode().IsRegular()) {
			return nil, fmt.Errorf("open %s: not a plain folder or file", p)
		}
	}
	// O_NOFOLLOW closes the gap between the last Lstat and the open for the
	// file itself; the folders above are the daemon's own.
	return os.OpenFile(p, os.O_RDONLY|syscall.O_NOFOLLOW, 0)
}
