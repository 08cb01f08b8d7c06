#!/bin/bash
# Runs several `kspaced recon --method mmps` commands on the same scan at the
# same time (so under the same outside load) and prints each one's wall and
# CPU seconds from /usr/bin/time.
# Usage: recon-side-by-side.sh SCAN "NAME KSPACED [RECON FLAGS…]"…
# e.g.   recon-side-by-side.sh sim320.h5 "base ./ks-main" "new ./ks --cpuprofile new.prof"
set -uo pipefail
scan=$1
shift
out=${OUT:-/tmp/recon-side-by-side}
mkdir -p "$out"
run() { # NAME KSPACED [FLAGS…]
	local name=$1 bin=$2
	shift 2
	rm -rf "${out:?}/$name"
	/usr/bin/time -f "$name wall %e s cpu %U+%S s maxrss %M KB" "$bin" recon "$scan" --method mmps "$@" \
		--npy --dicom=false --previews=false --out "$out/$name" >/dev/null 2>"$out/$name.err"
	tail -1 "$out/$name.err"
}
echo "start $(date -u +%T) $(uptime)"
for spec in "$@"; do
	# shellcheck disable=SC2086
	run $spec &
done
wait
echo "end $(date -u +%T) $(uptime)"
