#!/usr/bin/env bash
# Installs (as root, through apt-get) the Debian packages kspaced builds and
# tests with, or says exactly which are missing. Idempotent and quiet when all
# are present.
#   scripts/deps.sh build   what `make build` needs: gcc, pkg-config, libhdf5-dev
#                           (HDF5 C library for ISMRMRD/fastMRI), libopenblas-dev (BLAS)
#   scripts/deps.sh demo    build + mricron-data (real brain MRI volumes for the simulator)
#   scripts/deps.sh [test]  everything the tests compare against as well:
#                           bart, ismrmrd-tools, dcmtk, dicom3tools, orthanc(-dicomweb),
#                           python3-{numpy,h5py,pydicom,skimage}, libfftw3-dev (FFT benchmark),
#                           slurm-wlm and munge (a real single-node Slurm: scripts/slurm-local.sh),
#                           chromium (headless, loads the status page)
set -euo pipefail
build="gcc libc6-dev pkg-config libhdf5-dev libopenblas-dev"
demo="$build mricron-data"
test="$demo libfftw3-dev bart ismrmrd-tools dcmtk dicom3tools orthanc orthanc-dicomweb
python3 python3-numpy python3-h5py python3-pydicom python3-skimage slurm-wlm munge chromium"
case "${1:-test}" in
  build) pkgs=$build ;;
  demo) pkgs=$demo ;;
  test) pkgs=$test ;;
  *) echo "usage: $0 [build|demo|test]" >&2; exit 2 ;;
esac
missing=()
for p in $pkgs; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
[ ${#missing[@]} -eq 0 ] && exit 0
if [ "$(id -u)" -ne 0 ] || ! command -v apt-get >/dev/null; then
  echo "kspaced needs these Debian packages: ${missing[*]}" >&2
  echo "install them with: sudo apt-get install -y ${missing[*]}" >&2
  exit 1
fi
echo "deps: installing ${missing[*]}" >&2
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
