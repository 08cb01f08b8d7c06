#!/bin/bash
# Whole-command wall times of `kspaced recon` (MMPS) against `bart ecalib` +
# `bart pics -l1` on the same k-space, side by side, per scan.
# Usage: sampling-vs-bart.sh KSPACED PRIOR OUT "RECON FLAGS…" SCAN.h5…
# (fastMRI .h5 with kspace (1, coils, rows, cols); converted to BART .cfl
# first, not timed). Prints one line per scan: kspaced s, bart s, ratio.
set -euo pipefail
ks=$1 prior=$2 out=$3 flags=$4
shift 4
mkdir -p "$out"
for scan in "$@"; do
	name=$(basename "$scan" .h5)
	/usr/bin/python3 - "$scan" "$out/$name" <<'PY'
import sys, h5py, numpy as np
k = h5py.File(sys.argv[1], "r")["kspace"][0]          # [coil][ky][kx], row-major
c, ny, nx = k.shape
# BART: column-major, dims (x, y, z, coil): the same bytes as [coil][ky][kx].
k.astype(np.complex64).tofile(sys.argv[2] + ".cfl")
open(sys.argv[2] + ".hdr", "w").write("# Dimensions\n%d %d 1 %d\n" % (nx, ny, c))
PY
	t0=$(date +%s.%N)
	# shellcheck disable=SC2086
	"$ks" recon "$scan" --prior "$prior" $flags --npy --dicom=false --previews=false --out "$out/$name-kspaced" >/dev/null 2>&1
	t1=$(date +%s.%N)
	bart ecalib -m1 "$out/$name" "$out/$name-maps" >/dev/null 2>&1
	bart pics -l1 -r 0.01 "$out/$name" "$out/$name-maps" "$out/$name-pics" >/dev/null 2>&1
	t2=$(date +%s.%N)
	echo "$name $(echo "$t1 - $t0" | bc) $(echo "$t2 - $t1" | bc) $(echo "scale=1; ($t1 - $t0) / ($t2 - $t1)" | bc)"
done
