package dicomio

import (
	"github.com/kspaced/kspaced/internal/safefile"
)

// writeDirAtomic creates parent/name whole or not at all: fill writes into
// a hidden temporary sibling (".name.tmp-*", which ReadStudies skips), which
// is synced and renamed into place; on any error it is removed. Modes follow
// the process umask.
func writeDirAtomic(parent, name string, fill func(tmp string) error) error {
	return safefile.WriteDir(parent, name, 0o755, fill)
}

// writeFileAtomic writes data to path through a synced temporary sibling.
func writeFileAtomic(path string, data []byte) error {
	return safefile.WriteFile(path, data, 0o644)
}
