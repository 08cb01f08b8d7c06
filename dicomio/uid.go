package dicomio

import (
	"crypto/rand"
	"fmt"
	"math/big"
	"strconv"
	"strings"
)

// implementationClassUID identifies kspaced as the writer of a file: a
// fixed UUID-derived UID ("2.25." + the UUID 718555e1-60f3-4553-8682-4553e8974cbd as a decimal).
const implementationClassUID = "2.25.150895080867038159115261691072400018621"

const implementationVersion = "KSPACED_0_1"

// NewUID returns a new globally unique UID. With an empty root it is
// "2.25." followed by the decimal value of a random (version 4) UUID, which
// needs no registered root; otherwise root + "." + random digits, filling up
// to the 64 characters a UID may have.
func NewUID(root string) (string, error) {
	if root == "" || root == "2.25" || root == "2.25." {
		var b [16]byte
		if _, err := rand.Read(b[:]); err != nil {
			return "", fmt.Errorf("new UID: %w", err)
		}
		b[6] = b[6]&0x0f | 0x40 // version 4
		b[8] = b[8]&0x3f | 0x80 // RFC 4122 variant
		return "2.25." + new(big.Int).SetBytes(b[:]).String(), nil
	}
	root = strings.TrimSuffix(root, ".")
	if err := validUID(root); err != nil {
		return "", fmt.Errorf("UID root: %w", err)
	}
	digits := 64 - len(root) - 1
	if digits > 38 {
		digits = 38 // 10^38 < 2^128: plenty
	}
	if digits < 12 {
		return "", fmt.Errorf("UID root %q is too long to leave room for 12 unique digits", root)
	}
	limit := new(big.Int).Exp(big.NewInt(10), big.NewInt(int64(digits)), nil)
	n, err := rand.Int(rand.Reader, limit)
	if err != nil {
		return "", fmt.Errorf("new UID: %w", err)
	}
	if n.Sign() == 0 {
		n.SetInt64(1)
	}
	return root + "." + n.String(), nil
}

// validUID checks the UI syntax: dot-separated decimal components without
// leading zeros, at most 64 characters. Its errors describe the value and
// never quote it: it may come from a hostile file's header.
func validUID(u string) error {
	if u == "" || len(u) > 64 {
		return fmt.Errorf("length %d not in [1, 64]", len(u))
	}
	for i, c := range strings.Split(u, ".") {
		if c == "" {
			return fmt.Errorf("component %d is empty", i+1)
		}
		if len(c) > 1 && c[0] == '0' {
			return fmt.Errorf("component %d has a leading zero", i+1)
		}
		for _, r := range c {
			if r < '0' || r > '9' {
				return fmt.Errorf("component %d is not decimal", i+1)
			}
		}
	}
	return nil
}

// quoteUID is u quoted for an error message when it is a valid UID, else a
// description: a value in a UID's place may be anything, patient data too.
func quoteUID(u string) string {
	if validUID(u) != nil {
		return "(not a valid UID)"
	}
	return strconv.Quote(u)
}

// quoteCS is s quoted when it has the form of a code string (upper case,
// digits, space, underscore; at most 16 characters), else a description.
func quoteCS(s string) string {
	if s == "" || len(s) > 16 {
		return "(not a code string)"
	}
	for _, r := range s {
		if !(r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == ' ' || r == '_') {
			return "(not a code string)"
		}
	}
	return strconv.Quote(s)
}
