package main

import (
	"bufio"
	"fmt"
	"net"
	"net/http"
	"testing"
	"time"
)

// An idle keep-alive connection to the status server is closed (issue 20).
func TestHTTPClosesIdleConnections(t *testing.T) {
	old := httpIdleTimeout
	httpIdleTimeout = 300 * time.Millisecond
	defer func() { httpIdleTimeout = old }()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := newHTTPServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { fmt.Fprintln(w, "ok") }))
	go srv.Serve(ln)
	defer srv.Close()
	c, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	fmt.Fprintf(c, "GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
	r := bufio.NewReader(c)
	resp, err := http.ReadResponse(r, nil)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	t0 := time.Now()
	c.SetReadDeadline(time.Now().Add(5 * time.Second))
	_, err = r.ReadByte()
	if ne, ok := err.(net.Error); ok && ne.Timeout() {
		t.Fatalf("idle keep-alive connection still open after %s", time.Since(t0).Round(time.Millisecond))
	}
	if d := time.Since(t0); d > 2*time.Second {
		t.Errorf("idle connection closed after %s, want about %s", d, httpIdleTimeout)
	}
}
