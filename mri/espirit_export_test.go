package mri

// EspiritWithEigenvalues exposes espirit (maps and per-pixel eigenvalues) to
// the external test package, which may import mri/kspaceio.
var EspiritWithEigenvalues = espirit

// EspiritSynthetic exposes the synthetic maps, object and k-space.
var EspiritSynthetic = espSynthetic
