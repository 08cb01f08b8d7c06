//go:build kspaced_readerfaults

package isolate

// Built with -tags kspaced_readerfaults (end-to-end tests of the daemon
// only), children obey faultEnv, which the parent passes on.
func init() {
	beforeRead = envFault
	passEnv = append(passEnv, faultEnv)
}
