package espirit

// EspiritWithEigenvalues exposes espirit (maps and per-pixel eigenvalues) to
// the external test package, which may import mri/kspaceio.
var EspiritWithEigenvalues = estimate

// EspiritSynthetic exposes the synthetic maps, object and k-space.
var EspiritSynthetic = espSynthetic
