// Package kspaceio reads and writes the k-space file formats kspaced
// exchanges with other tools: ISMRMRD and fastMRI HDF5 (through the HDF5 C
// library), NumPy .npy and BART .cfl/.hdr.
//
// # One entry point
//
// Read(path) returns a Volume whatever the format; Detect(path) names it;
// Sniff(path) names the family (HDF5, NumPy, BART) from magic bytes without
// running the HDF5 library.
// The format comes from the content, never the name: the HDF5 signature (at
// offset 0 or a user-block offset 512, 1024, …) and then a /dataset group
// holding a data set "data" (ISMRMRD) or a /kspace data set (fastMRI); the
// NumPy magic; or a BART header beginning "# Dimensions" (path may be
// base.hdr, base.cfl or base). Anything else is ErrUnknownFormat. Every error
// names the file.
//
// # Orientation
//
// Scans are [coil][row][col] with Mask [row][col]. ISMRMRD: rows are
// phase-encoding lines (ky, encoded y), columns the readout (kx) after
// oversampling removal, as the generator's coil_images are stored. fastMRI:
// exactly as stored, (H, W) = (readout incl. oversampling, phase encoding),
// so the mask varies along columns. NumPy: [.., ky, kx] as stored. BART:
// [x y z coil] with x the column. Volume.ImageSize gives the reconstruction
// crop in that orientation from the header's recon matrix.
//
// # ISMRMRD
//
// /dataset/xml is parsed into Meta (encoded and recon matrix and FOV,
// encoding limits, parallel imaging, patient/study/measurement/system
// information, TR/TE/TI/flip angle; dates become DICOM DA/TM). Only the
// first <encoding> and only 2-D Cartesian encodings are read. Acquisitions
// in /dataset/data are read in batches of at most 8 MiB of samples (the
// variable-length data go through a per-batch arena) and assembled:
//
//   - one Scan per (repetition, contrast, phase, set, average, slice), ordered
//     with slice fastest; Volume.Labels names each;
//   - noise measurements (flag 19) are kept apart and give NoiseCov,
//     Σᵢⱼ = mean over samples of xᵢ·conj(xⱼ), scaled by the ratio of noise to
//     imaging dwell time (noise variance grows with bandwidth);
//   - navigator, phase-correction, feedback, dummy, surface-coil and
//     phase-stabilisation acquisitions (flags 23, 24, 26–31) and acquisitions
//     of other encoding spaces are skipped and counted;
//   - parallel-calibration lines (flags 20, 21) are measurements of the same
//     k-space and are placed like imaging lines, except calibration-only
//     lines of calibrationMode "separate", which go to Volume.Calibration
//     (one scan per slice index);
//   - reversed lines (flag 22) are flipped: stored sample j belongs at
//     number_of_samples−1−j; discard_pre/post refer to the stored order and
//     center_sample to the corrected one;
//   - a line goes to row e1 + encY/2 − limits.center (row e1 without limits),
//     sample s to column s − center_sample + encX/2 (center_sample 0 on a full
//     readout means encX/2); anything outside the encoded matrix is an error;
//   - readout oversampling is removed when the recon x is smaller than the
//     encoded x: centred orthonormal inverse DFT, keep the central recon-x
//     image samples, forward DFT — sample values and noise variance keep
//     their scale, and the FFT runs on staged batches of lines;
//   - a line measured more than once is averaged. Mask rows are 1 across the
//     measured samples (all columns once oversampling is removed).
//
// Attrs holds acquisition counts ("acquisitions", "imaging_acquisitions",
// "calibration_acquisitions", "noise_acquisitions", "skipped_acquisitions",
// "duplicate_lines") and "readout_oversampling_removed".
//
// # fastMRI
//
// kspace is (slices, coils, H, W) or (slices, H, W), a compound of two floats
// named r, i (h5py's complex64; complex128 is converted), read with one
// H5Dread straight into the slices' []complex64 (contiguous or chunked and
// compressed). The optional mask may be (W), (H, W) or (slices, H, W), float,
// integer or h5py bool, values 0 or 1. fastMRI's padding is applied: columns
// outside [W/2 − limits.center, W/2 − limits.center + limits.max + 1) of
// kspace_encoding_step_1 are never sampled. Without a mask a column counts as
// sampled where any coil and row is non-zero. Root attributes (acquisition,
// max, norm, acceleration, num_low_frequency, patient_id, …) become Attrs
// (numbers as float64 or int64, strings as string); Meta.AccelerationY falls
// back to the "acceleration" attribute. A (coils, coils) noise_covariance
// data set, which WriteFastMRI writes, is read into NoiseCov.
//
// WriteFastMRI writes kspace complex64 ((slices, H, W) for single-coil data,
// as fastMRI's single-coil files), mask float32 in the smallest of (W),
// (H, W), (slices, H, W) that holds it, ismrmrd_header built from Meta (a
// fixed-length string; missing matrices and encoding limits come from the
// k-space size) and Attrs. Scans are written as they are, never transposed:
// a volume read from ISMRMRD keeps its [ky][kx] orientation, which Meta's
// (x, y) matrices then describe the other way round from fastMRI's files.
// WriteReconstruction writes a fastMRI-style
// `reconstruction` float32 (slices, rows, cols). Both write a temporary file
// beside the target and rename it into place.
//
// # NumPy and BART
//
// .npy k-space is complex [ky, kx], [coils, ky, kx] or [slices, coils, ky,
// kx], with an optional sibling <base>_mask.npy of shape [kx], [ky, kx] or
// [slices, ky, kx]; .cfl is BART [x y z coil] with z = 1. Without a mask,
// every location where any coil is non-zero counts as sampled.
//
// # Bad input
//
// Nothing is allocated from a header before it is checked: dimensions
// against mri.MaxDim, mri.MaxCoils, MaxSlices and MaxElements (a .cfl's from
// its .hdr, before the data are opened); the bytes a file or data set
// announces against what it stores (equal for uncompressed layouts, at most
// 64:1 for compressed ones) and against Limits.MaxBytes, which for HDF5
// counts the decompressed bytes of every data set a read takes; files whose
// data are mostly holes (sparse) are refused; the samples ISMRMRD headers
// announce against the file size (variable-length data are stored
// uncompressed), and the assembled volume against 64 × the file size +
// 64 MiB. .npy and .cfl data are converted in blocks, so the result is the
// only large allocation. Strings are limited to MaxHeaderBytes. Header
// errors name the line or element, never a value (values include the
// patient's name and ID). The HDF5 library's own error printing is switched
// off in every call (it is per thread in thread-safe builds) and its error
// stack becomes the Go error text. Calls into HDF5 are serialised by a mutex
// on a locked OS thread.
//
// # Self-contained HDF5 only
//
// HDF5 can name data in other files; kspaced refuses all of it: a file with
// an external or user-defined link anywhere is refused when opened, a data
// set with external storage or a virtual layout when opened (before any
// read), and every link, group and data set is opened with access lists
// whose external-link callback refuses traversal. A user block (bytes before
// the HDF5 signature) may only be zeros or MATLAB's v7.3 header, so a file
// cannot be HDF5 and another format (a DICOM, say) at once. Soft links
// inside the file are followed (at most 8 in a row).
//
// The HDF5 C library still is not safe on hostile files (a flipped byte can
// crash or hang it): the daemon calls this package only in a child process
// (internal/isolate).
//
// # Build
//
// HDF5 support needs cgo, pkg-config and Debian's libhdf5-dev (flags from
// hdf5-serial.pc; scripts/deps.sh installs them; -tags nopkgconfig uses
// Debian's paths without pkg-config). Built with
// CGO_ENABLED=0 the package still reads .npy and .cfl and returns an error
// for HDF5 files.
package kspaceio
