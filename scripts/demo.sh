#!/usr/bin/env bash
# make demo: simulate an 8-coil, 4×-undersampled axial slice of a real brain
# MRI volume (Debian mricron-data's ch2) and reconstruct it with the embedded
# default configuration. Prints where everything went.
set -euo pipefail
bin=${1:-bin/kspaced}
out=${2:-out/demo}
rm -rf "$out"
mkdir -p "$out/scan" "$out/recon"
echo "== simulating an 8-coil brain slice (4× random undersampling) into $out/scan"
"$bin" simulate --source ch2 --coils 8 --rows 192 --cols 192 --accel 4 --out "$out/scan" --name brain
"$bin" inspect "$out/scan/brain.h5"
echo "== reconstructing with the default configuration into $out/recon"
"$bin" recon "$out/scan/brain.h5" --out "$out/recon" --npy
echo "== done: k-space and ground truth in $out/scan, reconstruction and report.json in $out/recon"
