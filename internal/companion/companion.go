// Package companion is the one home of kspaced's file-naming rule: which
// names are never inputs by themselves (hidden files, uploads in progress,
// and the files that travel with a k-space file), and which files travel
// with which entry. The daemon's inbox, the job's input listing and the
// retraining file scan all ask here, so a name is a job in one place exactly
// when it is k-space in the others.
package companion

import "strings"

// Suffixes of the files that travel with an entry.
const (
	Sidecar = ".json"      // <entry>.json: per-job options
	Marker  = ".ready"     // <entry>.ready: readiness marker
	Header  = ".hdr"       // <base>.hdr: a BART .cfl's header
	Mask    = "_mask.npy"  // <base>_mask.npy: the sampling mask (`kspaced simulate`, NumPy k-space)
	Truth   = "_truth.npy" // <base>_truth.npy: the ground-truth image (`kspaced simulate`)
)

// KSpaceExts are the file extensions of k-space files whose <base> the mask
// and truth companions are named after.
var KSpaceExts = []string{".h5", ".hdf5", ".mrd", ".npy", ".cfl"}

// tempSuffixes mark files a producer is still writing under a temporary name.
var tempSuffixes = []string{".part", ".partial", ".tmp", ".temp", ".filepart", ".crdownload", ".download", "~"}

// Ignored reports whether a name is never looked at: hidden files (markers,
// .DS_Store, hidden temporaries) and uploads in progress. It returns why,
// for a log line.
func Ignored(name string) (why string, ignored bool) {
	if strings.HasPrefix(name, ".") {
		return "hidden file", true
	}
	for _, s := range tempSuffixes {
		if strings.HasSuffix(name, s) {
			return "upload in progress (temporary name)", true
		}
	}
	return "", false
}

// Is reports whether name travels with another file and is never an input
// by itself: a sidecar, marker, .hdr, mask or truth file.
func Is(name string) bool {
	for _, s := range []string{Sidecar, Marker, Header, Mask, Truth} {
		if strings.HasSuffix(name, s) && len(name) > len(s) {
			return true
		}
	}
	return false
}

// Skip reports whether a file found in a job or a folder of scans is not an
// input of its own: ignored or a companion.
func Skip(name string) bool {
	_, ign := Ignored(name)
	return ign || Is(name)
}

// Base is a k-space file name without its format extension ("knee.h5" →
// "knee"), the stem its mask and truth companions are named after; ok is
// false for names without a k-space extension.
func Base(name string) (base string, ok bool) {
	low := strings.ToLower(name)
	for _, ext := range KSpaceExts {
		if strings.HasSuffix(low, ext) && len(name) > len(ext) {
			return name[:len(name)-len(ext)], true
		}
	}
	return name, false
}

// Of returns the names that travel with entry: optional ones, and one that
// must be present before the entry is complete (a .cfl's .hdr; "" if none).
func Of(entry string) (optional []string, required string) {
	optional = []string{entry + Sidecar, entry + Marker}
	if base, ok := Base(entry); ok {
		optional = append(optional, base+Mask, base+Truth)
		if strings.HasSuffix(entry, ".cfl") {
			required = base + Header
		}
	}
	return optional, required
}

// Owners returns the entry names that name would travel with (nil if name is
// not a companion).
func Owners(name string) []string {
	var out []string
	for _, s := range []string{Sidecar, Marker} {
		if strings.HasSuffix(name, s) && len(name) > len(s) {
			out = append(out, strings.TrimSuffix(name, s))
		}
	}
	if strings.HasSuffix(name, Header) && len(name) > len(Header) {
		out = append(out, strings.TrimSuffix(name, Header)+".cfl")
	}
	for _, s := range []string{Mask, Truth} {
		if strings.HasSuffix(name, s) && len(name) > len(s) {
			base := strings.TrimSuffix(name, s)
			for _, ext := range KSpaceExts {
				out = append(out, base+ext)
			}
		}
	}
	return out
}
