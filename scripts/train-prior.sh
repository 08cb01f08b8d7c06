#!/usr/bin/env bash
# Train the default prior after configs/prior-default.yaml (issue 14): write
# the simulated archive once, then run `kspaced retrain` on its undersampled
# k-space. Resumable: rerun the same command after an interruption; the
# archive is kept (its .done marker) and retrain continues from the last
# step it saved in the run folder. The archive is deterministic (seeded), so
# regenerating it elsewhere gives the same data id and the run still resumes.
#
#   scripts/train-prior.sh [OUT]        # OUT defaults to out/prior
#   RECIPE=other.yaml scripts/train-prior.sh out/other
#   RUN=train/default-prior scripts/train-prior.sh   # the run folder kept in git
#   RETRAIN_FLAGS=--adopt-data make prior            # extra retrain flags
#
# The default prior's run lives in train/default-prior/ (RUN): its laps are
# committed as they finish, so a later session continues from them; E-step
# samples (regenerated on resume) are git-ignored there.
set -euo pipefail
cd "$(dirname "$0")/.."
recipe=${RECIPE:-configs/prior-default.yaml}
out=${1:-out/prior}
mkdir -p "$out"
export PATH=/usr/local/go/bin:$PATH
bin="$out/kspaced"
go build -o "$bin" ./cmd/kspaced
if [[ ! -f "$out/archive/.done" ]]; then
	rm -rf "$out/archive"
	"$bin" simulate archive --config "$recipe" --out "$out/archive"
	touch "$out/archive/.done"
fi
run=${RUN:-$out/run}
"$bin" retrain --config "$recipe" --data "$out/archive/train" --out "$run" ${RETRAIN_FLAGS:-}
"$bin" prior show "$run/best.safetensors"
