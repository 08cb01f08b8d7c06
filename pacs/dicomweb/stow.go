// Package dicomweb is a DICOMweb STOW-RS client (PS3.18 10.5): it POSTs
// DICOM Part 10 files as multipart/related application/dicom to a server's
// /studies resource and reads which instances it stored.
package dicomweb

import (
	"context"
	"crypto/tls"
	"encoding/json"
	"fmt"
	"io"
	"mime/multipart"
	"net/http"
	"net/textproto"
	"os"
	"strings"
	"time"
)

// maxResponse bounds the server's answer we read (a JSON list of UIDs).
const maxResponse = 16 << 20

// Client posts instances to one DICOMweb server.
type Client struct {
	// BaseURL is the DICOMweb root, e.g. http://pacs:8042/dicom-web.
	BaseURL string
	// Header is added to every request (e.g. Authorization).
	Header http.Header
	// TLS configures https (nil: system roots).
	TLS *tls.Config
	// Timeout bounds one request, upload included; 0 means 5 minutes.
	Timeout time.Duration
	// Do, if set, replaces http.Client.Do (tests).
	Do func(*http.Request) (*http.Response, error)
}

// Result is what the server reported for one request.
type Result struct {
	Stored []string // SOP Instance UIDs in ReferencedSOPSequence
	Failed []Failure
}

// Failure is one instance the server refused.
type Failure struct {
	SOPInstanceUID string
	Reason         uint16 // FailureReason (0008,1197)
}

// HTTPError is a non-success answer; Transient says whether a retry may
// help (5xx, 429, 408). Its message leaves out the body, which may quote
// the data set and must not reach logs; Body holds its start.
type HTTPError struct {
	Status int
	Body   string
}

func (e *HTTPError) Error() string {
	return fmt.Sprintf("STOW-RS: HTTP %d %s", e.Status, http.StatusText(e.Status))
}

// Transient reports whether retrying later may succeed.
func (e *HTTPError) Transient() bool {
	return e.Status >= 500 || e.Status == 429 || e.Status == 408
}

// Store posts files (DICOM Part 10) in one request. An HTTP error or a
// partly refused request returns an error along with what was reported.
func (c *Client) Store(ctx context.Context, files []string) (Result, error) {
	if len(files) == 0 {
		return Result{}, nil
	}
	u := strings.TrimRight(c.BaseURL, "/") + "/studies"
	pr, pw := io.Pipe()
	mw := multipart.NewWriter(pw)
	go func() { pw.CloseWithError(writeParts(mw, files)) }()
	to := c.Timeout
	if to <= 0 {
		to = 5 * time.Minute
	}
	ctx, cancel := context.WithTimeout(ctx, to)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, u, pr)
	if err != nil {
		pr.Close()
		return Result{}, fmt.Errorf("STOW-RS %s: %w", u, err)
	}
	for k, vs := range c.Header {
		for _, v := range vs {
			req.Header.Add(k, v)
		}
	}
	req.Header.Set("Content-Type", `multipart/related; type="application/dicom"; boundary=`+mw.Boundary())
	req.Header.Set("Accept", "application/dicom+json")
	do := c.Do
	if do == nil {
		hc := &http.Client{Transport: &http.Transport{TLSClientConfig: c.TLS, Proxy: http.ProxyFromEnvironment, ResponseHeaderTimeout: to}}
		defer hc.CloseIdleConnections()
		do = hc.Do
	}
	resp, err := do(req)
	pr.Close()
	if err != nil {
		return Result{}, fmt.Errorf("STOW-RS %s: %w", u, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, maxResponse))
	if err != nil {
		return Result{}, fmt.Errorf("STOW-RS %s: read answer: %w", u, err)
	}
	if resp.StatusCode != http.StatusOK && resp.StatusCode != http.StatusAccepted && resp.StatusCode != http.StatusConflict {
		return Result{}, &HTTPError{Status: resp.StatusCode, Body: snippet(body)}
	}
	res, err := parseResult(body)
	if err != nil {
		return Result{}, fmt.Errorf("STOW-RS %s: HTTP %d: %w", u, resp.StatusCode, err)
	}
	if len(res.Failed) > 0 || resp.StatusCode == http.StatusConflict {
		return res, fmt.Errorf("STOW-RS %s: HTTP %d: the server refused %d of %d instances", u, resp.StatusCode, max(len(res.Failed), len(files)-len(res.Stored)), len(files))
	}
	return res, nil
}

func snippet(b []byte) string {
	s := strings.TrimSpace(string(b))
	if len(s) > 200 {
		s = s[:200] + "…"
	}
	return s
}

func writeParts(mw *multipart.Writer, files []string) error {
	for _, f := range files {
		h := textproto.MIMEHeader{}
		h.Set("Content-Type", "application/dicom")
		w, err := mw.CreatePart(h)
		if err != nil {
			return err
		}
		in, err := os.Open(f)
		if err != nil {
			return err
		}
		_, err = io.Copy(w, in)
		in.Close()
		if err != nil {
			return fmt.Errorf("%s: %w", f, err)
		}
	}
	return mw.Close()
}

// dicomJSON is the subset of the DICOM JSON model a STOW-RS answer uses.
type dicomJSON map[string]struct {
	VR    string            `json:"vr"`
	Value []json.RawMessage `json:"Value"`
}

func parseResult(body []byte) (Result, error) {
	var res Result
	if len(strings.TrimSpace(string(body))) == 0 {
		return res, nil
	}
	var top dicomJSON
	if err := json.Unmarshal(body, &top); err != nil {
		// Some servers answer an array holding the one object.
		var arr []dicomJSON
		if err2 := json.Unmarshal(body, &arr); err2 != nil || len(arr) != 1 {
			return res, fmt.Errorf("answer is not DICOM JSON: %w", err)
		}
		top = arr[0]
	}
	items := func(tag string) ([]dicomJSON, error) {
		var out []dicomJSON
		for _, raw := range top[tag].Value {
			var it dicomJSON
			if err := json.Unmarshal(raw, &it); err != nil {
				return nil, fmt.Errorf("sequence %s: %w", tag, err)
			}
			out = append(out, it)
		}
		return out, nil
	}
	first := func(it dicomJSON, tag string) string {
		v := it[tag].Value
		if len(v) == 0 {
			return ""
		}
		var s string
		if json.Unmarshal(v[0], &s) == nil {
			return s
		}
		return strings.Trim(string(v[0]), `"`)
	}
	ref, err := items("00081199")
	if err != nil {
		return res, err
	}
	for _, it := range ref {
		res.Stored = append(res.Stored, first(it, "00081155"))
	}
	failed, err := items("00081198")
	if err != nil {
		return res, err
	}
	for _, it := range failed {
		f := Failure{SOPInstanceUID: first(it, "00081155")}
		var n uint16
		if _, err := fmt.Sscan(first(it, "00081197"), &n); err == nil {
			f.Reason = n
		}
		res.Failed = append(res.Failed, f)
	}
	return res, nil
}
