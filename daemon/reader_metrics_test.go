package daemon

import (
	"io"
	"net/http/httptest"
	"strings"
	"testing"
)

// kspaced_reader_children_total shows the declared outcomes at zero and
// counts each child the processor's reader reports.
func TestReaderChildrenMetric(t *testing.T) {
	d, err := New(Options{Config: testConfig(t.TempDir()), Processor: newRecorder().process, ReaderOutcomes: []string{"ok", "crash", "timeout"}})
	if err != nil {
		t.Fatal(err)
	}
	d.CountReaderChild("crash")
	d.CountReaderChild("ok")
	d.CountReaderChild("ok")
	rec := httptest.NewRecorder()
	d.Handler().ServeHTTP(rec, httptest.NewRequest("GET", "/metrics", nil))
	body, _ := io.ReadAll(rec.Body)
	for _, want := range []string{`kspaced_reader_children_total{outcome="crash"} 1`,
		`kspaced_reader_children_total{outcome="ok"} 2`, `kspaced_reader_children_total{outcome="timeout"} 0`} {
		if !strings.Contains(string(body), want) {
			t.Errorf("/metrics lacks %q", want)
		}
	}
}
