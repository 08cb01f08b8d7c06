package fft

// SetAsm switches the assembly kernels on or off (where they exist) and
// returns the previous setting, so tests cover both code paths.
func SetAsm(on bool) (was bool) {
	was = useAsm
	useAsm = on && hasAsm
	return was
}

// HasAsm reports whether this build and CPU have assembly kernels.
func HasAsm() bool { return hasAsm }
