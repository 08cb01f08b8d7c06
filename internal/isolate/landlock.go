package isolate

import (
	"errors"
	"fmt"
	"os"
	"unsafe"

	"golang.org/x/sys/unix"
)

// landlockABI reports the kernel's Landlock ABI version, 0 without it.
func landlockABI() int {
	v, _, e := unix.Syscall(unix.SYS_LANDLOCK_CREATE_RULESET, 0, 0, unix.LANDLOCK_CREATE_RULESET_VERSION)
	if e != 0 {
		return 0
	}
	return int(v)
}

// LandlockAvailable reports whether children run with file access
// restricted to their job's folders.
func LandlockAvailable() bool { return landlockABI() > 0 }

const (
	fsRead     = unix.LANDLOCK_ACCESS_FS_READ_FILE | unix.LANDLOCK_ACCESS_FS_READ_DIR
	fileRights = unix.LANDLOCK_ACCESS_FS_READ_FILE | unix.LANDLOCK_ACCESS_FS_EXECUTE
)

// landlock restricts the calling thread to reading roots, plus what the
// dynamic loader needs to start the binary again (the executable, /usr,
// /lib, the loader cache); no writing, no TCP. It returns false, without
// error, where the kernel has no Landlock.
func landlock(roots []string) (bool, error) {
	abi := landlockABI()
	if abi <= 0 {
		return false, nil
	}
	handled := uint64(0x1fff) // ABI 1: every file-system right
	if abi >= 2 {
		handled |= unix.LANDLOCK_ACCESS_FS_REFER
	}
	if abi >= 3 {
		handled |= unix.LANDLOCK_ACCESS_FS_TRUNCATE
	}
	if abi >= 5 {
		handled |= unix.LANDLOCK_ACCESS_FS_IOCTL_DEV
	}
	attr := unix.LandlockRulesetAttr{Access_fs: handled}
	if abi >= 4 {
		attr.Access_net = unix.LANDLOCK_ACCESS_NET_BIND_TCP | unix.LANDLOCK_ACCESS_NET_CONNECT_TCP
	}
	if abi >= 6 {
		attr.Scoped = unix.LANDLOCK_SCOPE_ABSTRACT_UNIX_SOCKET | unix.LANDLOCK_SCOPE_SIGNAL
	}
	fd, _, e := unix.Syscall(unix.SYS_LANDLOCK_CREATE_RULESET, uintptr(unsafe.Pointer(&attr)), unsafe.Sizeof(attr), 0)
	if e != 0 {
		return false, fmt.Errorf("landlock ruleset: %w", e)
	}
	defer unix.Close(int(fd))
	add := func(path string, rights uint64, need bool) error {
		p, err := unix.Open(path, unix.O_PATH|unix.O_CLOEXEC, 0)
		if err != nil {
			if !need && errors.Is(err, unix.ENOENT) {
				return nil
			}
			return fmt.Errorf("landlock %s: %w", path, err)
		}
		defer unix.Close(p)
		var st unix.Stat_t
		if err := unix.Fstat(p, &st); err != nil {
			return err
		}
		if st.Mode&unix.S_IFMT != unix.S_IFDIR {
			rights &= fileRights // directory rights are refused on files
		}
		rule := unix.LandlockPathBeneathAttr{Allowed_access: rights, Parent_fd: int32(p)}
		_, _, e := unix.Syscall6(unix.SYS_LANDLOCK_ADD_RULE, fd, unix.LANDLOCK_RULE_PATH_BENEATH, uintptr(unsafe.Pointer(&rule)), 0, 0, 0)
		if e != 0 {
			return fmt.Errorf("landlock %s: %w", path, e)
		}
		return nil
	}
	for _, r := range roots {
		if err := add(r, fsRead, true); err != nil {
			return false, err
		}
	}
	exe, err := os.Executable()
	if err != nil {
		return false, err
	}
	if err := add(exe, fileRights, true); err != nil {
		return false, err
	}
	for _, d := range []string{"/usr", "/lib", "/lib64", "/etc/ld.so.cache"} {
		if err := add(d, fsRead|unix.LANDLOCK_ACCESS_FS_EXECUTE, false); err != nil {
			return false, err
		}
	}
	if err := unix.Prctl(unix.PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0); err != nil {
		return false, fmt.Errorf("no_new_privs: %w", err)
	}
	if _, _, e := unix.Syscall(unix.SYS_LANDLOCK_RESTRICT_SELF, fd, 0, 0); e != 0 {
		return false, fmt.Errorf("landlock restrict: %w", e)
	}
	return true, nil
}
