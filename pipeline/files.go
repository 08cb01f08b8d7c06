package pipeline

import "path/filepath"

// KSpaceCandidates lists the regular files under paths (folders walked
// recursively, in name order), leaving out companions.
func KSpaceCandidates(paths []string) ([]string, error) {
	files, err := listFiles(paths)
	if err != nil {
		return nil, err
	}
	var keep []string
	for _, f := range files {
		if !companion(f) {
			keep = append(keep, f)
		}
	}
	return keep, nil
}

// TruthPath is NAME_truth.npy beside the k-space file NAME.ext, where
// `kspaced simulate` writes the ground truth of its slices.
func TruthPath(path string) string {
	return filepath.Join(filepath.Dir(path), baseName(path)+"_truth.npy")
}
