// Package lab holds kspaced's experiments: measurements of what the
// methods achieve on real anatomy (the network learns: LearnEvidence; EM
// from corrupted scans: EMEvidence), whose outputs are the numbers in
// docs/bench. They take tens of minutes and are run by hand; the production
// packages do not import lab.
package lab
