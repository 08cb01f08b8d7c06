// Package pacs delivers kspaced's results to PACS destinations: it sends a
// job's DICOM files by C-STORE (package dimse) or STOW-RS (package
// dicomweb), and keeps a persistent delivery queue in the spool so that
// every published job reaches every configured destination across retries,
// crashes and restarts (docs/pacs.md).
package pacs

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"

	"github.com/kspaced/kspaced/configs"
	"github.com/kspaced/kspaced/pacs/dicomweb"
	"github.com/kspaced/kspaced/pacs/dimse"
)

// stowBatch is how many files one STOW-RS request carries.
const stowBatch = 32

// DICOMFiles lists the DICOM Part 10 files under dir (sorted; other files
// such as report.json and previews are skipped).
func DICOMFiles(dir string) ([]string, error) {
	var out []string
	err := filepath.WalkDir(dir, func(p string, de fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if !de.Type().IsRegular() {
			return nil
		}
		if _, err := dimse.ReadInstance(p); err != nil {
			if errors.Is(err, dimse.ErrNotDICOM) {
				return nil
			}
			return err
		}
		out = append(out, p)
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("list DICOM files in %s: %w", dir, err)
	}
	sort.Strings(out)
	return out, nil
}

func tlsConfig(d configs.Destination, serverName string) (*tls.Config, error) {
	c := &tls.Config{MinVersion: tls.VersionTLS12, ServerName: serverName}
	if d.CAFile != "" {
		pem, err := os.ReadFile(d.CAFile)
		if err != nil {
			return nil, fmt.Errorf("destination %s: ca_file: %w", d.Name, err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("destination %s: ca_file %s holds no PEM certificate", d.Name, d.CAFile)
		}
		c.RootCAs = pool
	}
	if d.CertFile != "" {
		cert, err := tls.LoadX509KeyPair(d.CertFile, d.KeyFile)
		if err != nil {
			return nil, fmt.Errorf("destination %s: client certificate: %w", d.Name, err)
		}
		c.Certificates = []tls.Certificate{cert}
	}
	return c, nil
}

func peer(p configs.PACS, d configs.Destination) (dimse.Peer, error) {
	pr := dimse.Peer{
		Addr:      net.JoinHostPort(d.Host, strconv.Itoa(d.Port)),
		CalledAE:  d.AETitle,
		CallingAE: p.CallingAE,
		Timeout:   p.Timeout, DialTimeout: p.Timeout,
		MaxPDU: uint32(d.MaxPDU),
	}
	if d.TLS {
		c, err := tlsConfig(d, d.Host)
		if err != nil {
			return pr, err
		}
		pr.TLS = c
	}
	return pr, nil
}

// maxSecret bounds a credentials file.
const maxSecret = 64 << 10

func readSecret(path string) (string, error) {
	f, err := os.Open(path)
	if err != nil {
		return "", err
	}
	defer f.Close()
	b, err := io.ReadAll(io.LimitReader(f, maxSecret+1))
	if err != nil {
		return "", err
	}
	if len(b) > maxSecret {
		return "", fmt.Errorf("%s: over %d bytes", path, maxSecret)
	}
	return strings.TrimSpace(string(b)), nil
}

func webClient(p configs.PACS, d configs.Destination) (*dicomweb.Client, error) {
	c := &dicomweb.Client{BaseURL: d.URL, Timeout: p.Timeout * 10, Header: http.Header{}}
	switch {
	case d.TokenFile != "":
		tok, err := readSecret(d.TokenFile)
		if err != nil {
			return nil, fmt.Errorf("destination %s: token_file: %w", d.Name, err)
		}
		c.Header.Set("Authorization", "Bearer "+tok)
	case d.Username != "":
		pw, err := readSecret(d.PasswordFile)
		if err != nil {
			return nil, fmt.Errorf("destination %s: password_file: %w", d.Name, err)
		}
		req := http.Request{Header: http.Header{}}
		req.SetBasicAuth(d.Username, pw)
		c.Header.Set("Authorization", req.Header.Get("Authorization"))
	}
	if strings.HasPrefix(d.URL, "https:") && (d.CAFile != "" || d.CertFile != "") {
		tc, err := tlsConfig(d, "")
		if err != nil {
			return nil, err
		}
		c.TLS = tc
	}
	return c, nil
}

// Echo checks that a destination answers: C-ECHO for DIMSE, a QIDO-RS
// query of one study for DICOMweb.
func Echo(ctx context.Context, p configs.PACS, d configs.Destination) error {
	if d.IsWeb() {
		c, err := webClient(p, d)
		if err != nil {
			return err
		}
		return webEcho(ctx, c, p)
	}
	pr, err := peer(p, d)
	if err != nil {
		return err
	}
	if err := dimse.Echo(ctx, pr); err != nil {
		return fmt.Errorf("destination %s: %w", d.Name, err)
	}
	return nil
}

func webEcho(ctx context.Context, c *dicomweb.Client, p configs.PACS) error {
	ctx, cancel := context.WithTimeout(ctx, p.Timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, strings.TrimRight(c.BaseURL, "/")+"/studies?limit=1", nil)
	if err != nil {
		return err
	}
	req.Header.Set("Accept", "application/dicom+json")
	for k, vs := range c.Header {
		req.Header[k] = vs
	}
	hc := &http.Client{Transport: &http.Transport{TLSClientConfig: c.TLS, Proxy: http.ProxyFromEnvironment}}
	defer hc.CloseIdleConnections()
	resp, err := hc.Do(req)
	if err != nil {
		return fmt.Errorf("DICOMweb %s: %w", c.BaseURL, err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK && resp.StatusCode != http.StatusNoContent {
		return fmt.Errorf("DICOMweb %s: %w", c.BaseURL, &dicomweb.HTTPError{Status: resp.StatusCode})
	}
	return nil
}

// Send sends files (DICOM Part 10) to d and returns how many the
// destination confirmed. Files are sent as they are: a resend carries the
// same SOP Instance UIDs, which a PACS stores once.
func Send(ctx context.Context, p configs.PACS, d configs.Destination, files []string) (int, error) {
	if len(files) == 0 {
		return 0, nil
	}
	if d.IsWeb() {
		return sendWeb(ctx, p, d, files)
	}
	return sendDIMSE(ctx, p, d, files)
}

func sendWeb(ctx context.Context, p configs.PACS, d configs.Destination, files []string) (int, error) {
	c, err := webClient(p, d)
	if err != nil {
		return 0, err
	}
	n := 0
	for i := 0; i < len(files); i += stowBatch {
		res, err := c.Store(ctx, files[i:min(i+stowBatch, len(files))])
		n += len(res.Stored)
		if err != nil {
			return n, fmt.Errorf("destination %s: %w", d.Name, err)
		}
	}
	return n, nil
}

func sendDIMSE(ctx context.Context, p configs.PACS, d configs.Destination, files []string) (int, error) {
	pr, err := peer(p, d)
	if err != nil {
		return 0, err
	}
	insts := make([]dimse.Instance, len(files))
	for i, f := range files {
		if insts[i], err = dimse.ReadInstance(f); err != nil {
			return 0, err
		}
	}
	pcs, err := dimse.ContextsFor(insts)
	if err != nil {
		return 0, err
	}
	a, err := dimse.Connect(ctx, pr, pcs)
	if err != nil {
		return 0, fmt.Errorf("destination %s: %w", d.Name, err)
	}
	n := 0
	var errs []error
	for _, in := range insts {
		if !a.Accepted(in.SOPClassUID, in.TransferSyntaxUID) {
			errs = append(errs, fmt.Errorf("SOP class %s in %s not accepted", in.SOPClassUID, in.TransferSyntaxUID))
			continue
		}
		err := a.Store(ctx, in)
		var se *dimse.StatusError
		switch {
		case err == nil:
			n++
		case errors.As(err, &se):
			errs = append(errs, err) // the association stays usable
		default:
			a.Abort()
			return n, fmt.Errorf("destination %s: %w", d.Name, err)
		}
	}
	// Every response is in: a failed release loses nothing.
	_ = a.Release(ctx)
	if len(errs) > 0 {
		return n, fmt.Errorf("destination %s: %d of %d instances not stored: %w", d.Name, len(insts)-n, len(insts), errors.Join(errs...))
	}
	return n, nil
}

// PeerDetail returns what the destination itself said about a failure (a
// DIMSE error comment, the start of an HTTP body), for the failed-delivery
// record only: it may quote patient data, so it never goes to the logs.
func PeerDetail(err error) string {
	var se *dimse.StatusError
	if errors.As(err, &se) && se.Comment != "" {
		return strings.TrimSpace(se.Comment)
	}
	var he *dicomweb.HTTPError
	if errors.As(err, &he) {
		return he.Body
	}
	return ""
}
