#!/usr/bin/env bash
# Triage the inputs the reader-child fuzz targets recorded as contained
# crashes (internal/isolate, KSPACED_FUZZ_CRASHDIR): re-read each in a reader
# child under gdb and group them by signal, the innermost frame of the
# library that crashed (libc's memcpy and the like skipped) and the kspaced C
# function that called into it. A new group is a new crash class to look at.
#   scripts/fuzz-triage.sh CRASHDIR [N]  (needs gdb; writes CRASHDIR/triage.txt)
# With N, only N inputs drawn at random (a fixed draw; gdb takes seconds each).
set -euo pipefail
dir=$(realpath "${1:?usage: fuzz-triage.sh CRASHDIR [N]}")
n=${2:-0}
export PATH=/usr/local/go/bin:$PATH
cd "$(dirname "$0")/.."
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
go test -c -o "$work/isolate.test" ./internal/isolate/
out="$dir/triage.txt"
: > "$out"
inputs() {
  if ((n > 0)); then
    ls "$dir"/*.in | shuf -n "$n" --random-source=<(yes)
  else
    ls "$dir"/*.in
  fi
}
for in in $(inputs 2>/dev/null); do
  name=$(basename "$in" .in)
  job="$work/job"
  rm -rf "$job" && mkdir -p "$job"
  case "$name" in
  FuzzDICOMFolder-*) # two bytes of cut, then the data split at the cut
    cut=$(od -An -tu1 -N2 "$in" | awk '{print $1*256+$2}')
    size=$(($(stat -c %s "$in") - 2))
    ((cut > size)) && cut=$size
    tail -c +3 "$in" | head -c "$cut" > "$job/a.dcm"
    tail -c +$((3 + cut)) "$in" > "$job/b.dcm"
    req="{\"op\":\"dicom\",\"paths\":[\"$job\"],\"roots\":[\"$job\"],\"max_bytes\":268435456}" ;;
  *)
    cp "$in" "$job/k.h5"
    req="{\"op\":\"kspace\",\"paths\":[\"$job/k.h5\"],\"roots\":[\"$job\"],\"max_bytes\":268435456}" ;;
  esac
  bt=$(timeout 120 gdb -q -batch -ex run -ex bt --args "$work/isolate.test" __read-untrusted "$req" 2>&1 || true)
  sig=$(grep -o 'received signal SIG[A-Z]*' <<<"$bt" | head -1 | awk '{print $3}')
  lib=$(grep -E '^#[0-9]+ ' <<<"$bt" | grep -v -E 'libc\.so|/sysdeps/|^#0 +__mem|^#0 +__str' |
    grep -o -E ' in [A-Za-z_][A-Za-z0-9_]* \(\) from [^ ]*' | head -1 | awk '{print $2}')
  ks=$(grep -o -E ' (in )?ks_[a-z0-9_]+ \(' <<<"$bt" | head -1 | grep -o -E 'ks_[a-z0-9_]+' || true)
  echo "${sig:-no-signal} ${lib:-?} via ${ks:-?} $name" >> "$out"
done
echo "# class (signal, crashing function, kspaced caller): inputs" >> "$out"
awk '$1 != "#" {print $1, $2, $3, $4}' "$out" | sort | uniq -c | sort -rn | sed 's/^/# /' >> "$out"
grep '^#' "$out"
