package configs

import (
	"fmt"
	"net"
	"net/url"
	"regexp"
	"time"
)

// PACS configures delivery of every published job's DICOM to destinations
// (`kspaced serve`, `kspaced pacs`). Only the daemon's own configuration
// counts: a job's sidecar cannot redirect its results.
type PACS struct {
	// CallingAE is kspaced's AE title towards DIMSE destinations.
	CallingAE    string        `yaml:"calling_ae"`
	Destinations []Destination `yaml:"destinations"`
	// Retries after a failed attempt, waiting RetryBackoff doubled each
	// time (at most MaxBackoff), before a failed-delivery record.
	Retries      int           `yaml:"retries"`
	RetryBackoff time.Duration `yaml:"retry_backoff"`
	MaxBackoff   time.Duration `yaml:"max_backoff"`
	// Timeout bounds connecting and each network read or write.
	Timeout time.Duration `yaml:"timeout"`
	Listen  Listen        `yaml:"listen"`
}

// Listen configures the C-STORE listener that receives studies into the
// inbox (`kspaced serve`).
type Listen struct {
	// Addr is host:port; "" turns the listener off. Give a loopback or a
	// specific interface address: nothing is exposed unless named here.
	Addr    string `yaml:"addr"`
	AETitle string `yaml:"ae_title"`
	// Callers are the calling AE titles accepted; any other is rejected.
	Callers         []string `yaml:"callers"`
	MaxInstanceMB   int      `yaml:"max_instance_mb"`
	MaxAssociations int      `yaml:"max_associations"`
	// QuietPeriod > 0 gathers one calling AE's associations that follow
	// each other within it into one study folder; 0 makes each
	// association's end complete its folder.
	QuietPeriod time.Duration `yaml:"quiet_period"`
}

// Destination is one PACS: a DIMSE peer (ae_title, host, port) or a
// DICOMweb server (url).
type Destination struct {
	Name    string `yaml:"name"`
	AETitle string `yaml:"ae_title"`
	Host    string `yaml:"host"`
	Port    int    `yaml:"port"`
	URL     string `yaml:"url"`
	// TLS for a DIMSE peer (DICOM TLS); a DICOMweb URL uses https instead.
	TLS bool `yaml:"tls"`
	// CAFile verifies the server (PEM); "" uses the system roots.
	// CertFile and KeyFile give a client certificate.
	CAFile   string `yaml:"ca_file"`
	CertFile string `yaml:"cert_file"`
	KeyFile  string `yaml:"key_file"`
	// MaxPDU is the largest PDU kspaced accepts from a DIMSE peer; 0: 256 KiB.
	MaxPDU int `yaml:"max_pdu"`
	// DICOMweb credentials, read from files at each request so that they
	// stay out of the config: a bearer token, or a user and password.
	TokenFile    string `yaml:"token_file"`
	Username     string `yaml:"username"`
	PasswordFile string `yaml:"password_file"`
}

// IsWeb reports whether d is a DICOMweb (STOW-RS) destination.
func (d Destination) IsWeb() bool { return d.URL != "" }

// Destination returns the destination called name.
func (p PACS) Destination(name string) (Destination, bool) {
	for _, d := range p.Destinations {
		if d.Name == name {
			return d, true
		}
	}
	return Destination{}, false
}

var destName = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$`)

func validAE(ae string) bool {
	if ae == "" || len(ae) > 16 || ae[0] == ' ' {
		return false
	}
	for _, r := range ae {
		if r < 0x20 || r > 0x7e || r == '\\' {
			return false
		}
	}
	return true
}

func (p PACS) validate(v *validator) {
	v.check(validAE(p.CallingAE), "pacs.calling_ae = %q, want 1 to 16 printable ASCII characters", p.CallingAE)
	v.rangeI("pacs.retries", p.Retries, 0, 1000)
	v.dur("pacs.retry_backoff", p.RetryBackoff, 0, 24*time.Hour)
	v.dur("pacs.max_backoff", p.MaxBackoff, p.RetryBackoff, 7*24*time.Hour)
	v.dur("pacs.timeout", p.Timeout, time.Second, time.Hour)
	l := p.Listen
	if l.Addr != "" {
		_, port, err := net.SplitHostPort(l.Addr)
		v.check(err == nil && port != "" && port != "0", "pacs.listen.addr = %q, want host:port (e.g. 127.0.0.1:11112)", l.Addr)
		v.check(len(l.Callers) > 0, "pacs.listen.callers is empty: name the calling AE titles allowed to send")
	}
	v.check(validAE(l.AETitle), "pacs.listen.ae_title = %q, want 1 to 16 printable ASCII characters", l.AETitle)
	for _, c := range l.Callers {
		v.check(validAE(c), "pacs.listen.callers: %q, want 1 to 16 printable ASCII characters", c)
	}
	v.rangeI("pacs.listen.max_instance_mb", l.MaxInstanceMB, 1, 64<<10)
	v.rangeI("pacs.listen.max_associations", l.MaxAssociations, 1, 1024)
	v.dur("pacs.listen.quiet_period", l.QuietPeriod, 0, time.Hour)
	seen := map[string]bool{}
	for i, d := range p.Destinations {
		key := fmt.Sprintf("pacs.destinations[%d]", i)
		if d.Name != "" {
			key = fmt.Sprintf("pacs.destinations[%s]", d.Name)
		}
		v.check(destName.MatchString(d.Name), "%s.name = %q, want letters, digits, '.', '_' or '-' (at most 64)", key, d.Name)
		v.check(!seen[d.Name], "%s: the name is used twice", key)
		seen[d.Name] = true
		dimse := d.AETitle != "" || d.Host != "" || d.Port != 0
		switch {
		case dimse && d.URL != "":
			v.check(false, "%s: give either ae_title, host and port (DIMSE) or url (DICOMweb), not both", key)
		case d.URL != "":
			u, err := url.Parse(d.URL)
			v.check(err == nil && (u.Scheme == "http" || u.Scheme == "https") && u.Host != "", "%s.url = %q, want an http(s) URL of the DICOMweb root", key, d.URL)
			v.check(!d.TLS, "%s.tls is for DIMSE; use an https url", key)
			v.check(d.MaxPDU == 0, "%s.max_pdu is for DIMSE", key)
			v.check(d.TokenFile == "" || d.Username == "", "%s: give token_file or username and password_file, not both", key)
			v.check((d.Username == "") == (d.PasswordFile == ""), "%s: username and password_file go together", key)
		default:
			v.check(validAE(d.AETitle), "%s.ae_title = %q, want 1 to 16 printable ASCII characters", key, d.AETitle)
			v.check(d.Host != "", "%s.host is empty", key)
			v.rangeI(key+".port", d.Port, 1, 65535)
			v.check(d.MaxPDU == 0 || (d.MaxPDU >= 4096 && d.MaxPDU <= 16<<20), "%s.max_pdu = %d, want 0 or in [4096, 16 MiB]", key, d.MaxPDU)
			v.check(d.TokenFile == "" && d.Username == "" && d.PasswordFile == "", "%s: token_file, username and password_file are for DICOMweb", key)
		}
		v.check((d.CertFile == "") == (d.KeyFile == ""), "%s: cert_file and key_file go together", key)
	}
}
