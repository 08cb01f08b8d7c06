#!/usr/bin/env bash
# make demo: the main job on the embedded default configuration. It simulates
# an 8-coil, 4×-undersampled axial slice of a real brain MRI volume (Debian
# mricron-data's ch2), drops it into a spool inbox, and runs the daemon once
# (`kspaced serve --once`) with MMPS posterior sampling under the built-in
# prior (configs/mmps.yaml), which publishes the posterior mean and std as
# DICOM series, a PNG preview (zero-filled | mean | std), QC and report.json in
# the outbox. Prints where everything went.
set -euo pipefail
bin=${1:-bin/kspaced}
out=${2:-out/demo}
rm -rf "$out"
mkdir -p "$out/scan" "$out/spool/inbox"
echo "== simulating an 8-coil brain slice (4× random undersampling) into $out/scan"
"$bin" simulate --source ch2 --coils 8 --rows 192 --cols 192 --accel 4 --out "$out/scan" --name brain
"$bin" inspect "$out/scan/brain.h5"
echo "== dropping it into $out/spool/inbox (write elsewhere, then rename in) and running the daemon once"
cp "$out/scan/brain.h5" "$out/spool/inbox/.brain.h5.part"
mv "$out/spool/inbox/.brain.h5.part" "$out/spool/inbox/brain.h5"
touch "$out/spool/inbox/brain.h5.ready"
"$bin" serve --once --spool "$out/spool" --config configs/mmps.yaml
job="$out/spool/outbox/brain"
if [ ! -f "$job/report.json" ]; then
  echo "demo: no result in $job; see $out/spool/failed" >&2
  exit 1
fi
echo "== result in $job:"
find "$job" -type f | sort
echo "== ground truth in $out/scan/brain_truth.npy; open the DICOM with any viewer or look at the preview PNG"
