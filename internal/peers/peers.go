// Package peers starts real DICOM peers for tests — dcmtk's storescp and
// Orthanc — on loopback ports with temporary configurations, stopped when
// the test ends, and writes kspaced series to send to them. Tests that need
// a peer skip when it is not installed unless KSPACED_REQUIRE_PEERS=1.
package peers

import (
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	"github.com/kspaced/kspaced/dicomio"
	"github.com/kspaced/kspaced/internal/testutil"
)

// Need returns the path of a peer program (also looked up in /usr/sbin,
// where Debian puts Orthanc), skipping the test when it is absent or failing
// it under KSPACED_REQUIRE_PEERS=1, as testutil does.
func Need(t testing.TB, prog string) string {
	t.Helper()
	if _, err := exec.LookPath(prog); err != nil {
		if p := "/usr/sbin/" + prog; fileExists(p) {
			return p
		}
	}
	return testutil.Tool(t, prog)
}

func fileExists(p string) bool {
	_, err := os.Stat(p)
	return err == nil
}

// FreePort returns a loopback TCP port that was free a moment ago.
func FreePort(t testing.TB) int {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port
}

// waitTCP waits until addr accepts connections.
func waitTCP(t testing.TB, addr string, cmd *exec.Cmd, log string) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for time.Now().Before(deadline) {
		c, err := net.DialTimeout("tcp", addr, time.Second)
		if err == nil {
			c.Close()
			return
		}
		if cmd.ProcessState != nil {
			break
		}
		time.Sleep(50 * time.Millisecond)
	}
	out, _ := os.ReadFile(log)
	t.Fatalf("%s did not listen on %s: %s", cmd.Path, addr, out)
}

// start runs cmd until the test ends; its output goes to the returned file.
func start(t testing.TB, cmd *exec.Cmd) string {
	t.Helper()
	log := filepath.Join(t.TempDir(), "peer.log")
	f, err := os.Create(log)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { f.Close() })
	cmd.Stdout, cmd.Stderr = f, f
	if err := cmd.Start(); err != nil {
		t.Fatalf("start %s: %v", cmd.Path, err)
	}
	done := make(chan struct{})
	go func() { _ = cmd.Wait(); close(done) }()
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		<-done
	})
	return log
}

// StoreSCP is a running dcmtk storescp.
type StoreSCP struct {
	Addr, AE string
	Dir      string // where it writes received files
}

// StartStoreSCP runs `storescp` on a loopback port, accepting any calling AE
// and writing what it receives into a temporary folder. extra arguments are
// passed before the port.
func StartStoreSCP(t testing.TB, ae string, extra ...string) *StoreSCP {
	t.Helper()
	bin := Need(t, "storescp")
	dir := t.TempDir()
	port := FreePort(t)
	args := append([]string{"--aetitle", ae, "--output-directory", dir}, extra...)
	args = append(args, fmt.Sprint(port))
	cmd := exec.Command(bin, args...)
	// dcmtk leaves Nagle's algorithm on unless told: every small response
	// would then wait for a delayed ACK (40 ms on Linux).
	cmd.Env = append(os.Environ(), "TCP_NODELAY=1")
	log := start(t, cmd)
	addr := fmt.Sprintf("127.0.0.1:%d", port)
	waitTCP(t, addr, cmd, log)
	return &StoreSCP{Addr: addr, AE: ae, Dir: dir}
}

// Files lists what storescp has written.
func (s *StoreSCP) Files(t testing.TB) []string {
	t.Helper()
	es, err := os.ReadDir(s.Dir)
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, e := range es {
		if e.Type().IsRegular() {
			out = append(out, filepath.Join(s.Dir, e.Name()))
		}
	}
	return out
}

// Orthanc is a running Orthanc with the DICOMweb plugin.
type Orthanc struct {
	DICOMAddr, AE string
	URL           string // REST API root, e.g. http://127.0.0.1:8042
	Dir           string
}

// StartOrthanc runs Orthanc with a temporary storage and configuration,
// authentication off, DICOMweb on at /dicom-web/. Only localhost may use
// its HTTP port, and only the AE title KSPACED from 127.0.0.1 its DICOM port.
func StartOrthanc(t testing.TB) *Orthanc {
	t.Helper()
	bin := Need(t, "Orthanc")
	plugin := testutil.File(t, "/usr/share/orthanc/plugins/libOrthancDicomWeb.so")
	dir := t.TempDir()
	hp, dp := FreePort(t), FreePort(t)
	cfg := map[string]any{
		"Name":                  "kspaced-test",
		"StorageDirectory":      filepath.Join(dir, "db"),
		"IndexDirectory":        filepath.Join(dir, "db"),
		"HttpPort":              hp,
		"DicomPort":             dp,
		"DicomAet":              "ORTHANC",
		"RemoteAccessAllowed":   false,
		"AuthenticationEnabled": false,
		"DicomCheckCalledAet":   true,
		// Orthanc 1.10 cannot bind to one interface: its DICOM port only
		// serves kspaced's AE title from loopback, its HTTP port only
		// localhost (RemoteAccessAllowed false).
		"DicomModalities":        map[string]any{"kspaced": []any{"KSPACED", "127.0.0.1", 104}},
		"DicomAlwaysAllowEcho":   false,
		"DicomAlwaysAllowStore":  false,
		"DicomCheckModalityHost": true,
		"HttpServerEnabled":      true,
		"StableAge":              1,
		"Plugins":                []string{plugin},
		"DicomWeb":               map[string]any{"Enable": true, "Root": "/dicom-web/"},
	}
	raw, _ := json.Marshal(cfg)
	path := filepath.Join(dir, "orthanc.json")
	if err := os.WriteFile(path, raw, 0o600); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(bin, path)
	log := start(t, cmd)
	o := &Orthanc{DICOMAddr: fmt.Sprintf("127.0.0.1:%d", dp), AE: "ORTHANC", URL: fmt.Sprintf("http://127.0.0.1:%d", hp), Dir: dir}
	waitTCP(t, fmt.Sprintf("127.0.0.1:%d", hp), cmd, log)
	waitTCP(t, o.DICOMAddr, cmd, log)
	return o
}

// Get decodes a JSON answer of Orthanc's REST API.
func (o *Orthanc) Get(t testing.TB, path string, into any) {
	t.Helper()
	body := o.GetRaw(t, path)
	if err := json.Unmarshal(body, into); err != nil {
		t.Fatalf("GET %s: %v: %s", path, err, body)
	}
}

// GetRaw returns the body of a REST API answer.
func (o *Orthanc) GetRaw(t testing.TB, path string) []byte {
	t.Helper()
	resp, err := http.Get(o.URL + path)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != 200 {
		t.Fatalf("GET %s: %s: %s", path, resp.Status, body)
	}
	return body
}

// Instance is what Orthanc knows of one stored instance.
type Instance struct {
	ID                string
	SOPInstanceUID    string
	SeriesInstanceUID string
	StudyInstanceUID  string
}

// Instances lists every instance Orthanc holds, with its UIDs.
func (o *Orthanc) Instances(t testing.TB) []Instance {
	t.Helper()
	var ids []string
	o.Get(t, "/instances", &ids)
	out := make([]Instance, 0, len(ids))
	for _, id := range ids {
		var tags map[string]any
		o.Get(t, "/instances/"+id+"/simplified-tags", &tags)
		str := func(k string) string { s, _ := tags[k].(string); return s }
		out = append(out, Instance{ID: id, SOPInstanceUID: str("SOPInstanceUID"), SeriesInstanceUID: str("SeriesInstanceUID"), StudyInstanceUID: str("StudyInstanceUID")})
	}
	return out
}

// Series writes a kspaced reconstruction (mean and std series of slices
// 16×16 images) into dir, the way the pipeline does, and returns the refs.
func Series(t testing.TB, dir string, slices int) []dicomio.SeriesRef {
	t.Helper()
	return SeriesSized(t, dir, slices, 16, 16)
}

// SeriesSized is Series with rows×cols images.
func SeriesSized(t testing.TB, dir string, slices, rows, cols int) []dicomio.SeriesRef {
	t.Helper()
	study, err := dicomio.NewStudy(dicomio.Patient{Name: "Test^Patient", ID: "PID-SECRET-1"}, "knee", "", time.Now())
	if err != nil {
		t.Fatal(err)
	}
	mean := make([]float32, slices*rows*cols)
	std := make([]float32, len(mean))
	for i := range mean {
		mean[i], std[i] = float32(i%97)*1e-2, float32(i%13)*1e-3
	}
	scale := dicomio.DisplayScale(mean)
	refs, err := dicomio.WriteScan(dir, study, []dicomio.OutputSeries{
		{Kind: dicomio.KindMean, Method: "CG-SENSE", Images: mean, Slices: slices, Rows: rows, Cols: cols, Scale: scale},
		{Kind: dicomio.KindStd, Method: "CG-SENSE", Images: std, Slices: slices, Rows: rows, Cols: cols, Scale: scale},
	}, dicomio.WriteOptions{})
	if err != nil {
		t.Fatal(err)
	}
	return refs
}
