#!/usr/bin/env bash
# make ship-prior LAP=NN: embed network lap NN of the default-prior run
# (train/default-prior) as the built-in prior, with a diagonal covariance head
# (OCM) so that MMPS's default covariance (auto) runs without VJPs.
#   0. the lap's QC calibration (typicality; lab TestQCEvidence with the
#      archive's test scans, a few minutes), unless its sidecar exists
#   1. L1-wavelet reconstructions of the run's training archive (corrupted
#      data only; once, kept in out/prior/l1train)
#   2. kspaced prior fit-covariance on them (resumable: rerun to continue;
#      about 17 min on two loaded cores, docs/bench/sampling.md)
#   3. copy the checkpoint with its head, the run's laps.json and the lap's
#      QC calibration (lap-NN.safetensors.qc.json) into priors/builtin/
set -euo pipefail
cd "$(dirname "$0")/.."
lap=${1:?usage: scripts/ship-prior.sh NN}
run=train/default-prior
src="$run/lap-$lap.safetensors"
export PATH=/usr/local/go/bin:$PATH
bin=out/prior/kspaced
go build -o "$bin" ./cmd/kspaced
"$bin" prior show "$src" | grep -q '^kind: *unet' || { echo "ship-prior: $src is not a network prior (the built-in prior must serve any matrix)" >&2; exit 1; }
if [[ ! -f "$src.qc.json" ]]; then
	(cd lab && KSPACED_QC_PRIORS="lap-$lap.safetensors" KSPACED_QC_EVIDENCE=1 KSPACED_QC_WRITE_CALIBRATION=priors \
		KSPACED_QC_ARCHIVE="$PWD/../out/prior/archive" go test . -run 'TestQCEvidence$' -count=1 -timeout 90m)
fi
if [[ ! -f out/prior/l1train/.done ]]; then
	rm -rf out/prior/l1train
	"$bin" recon out/prior/archive/train --method l1-wavelet --npy --dicom=false --previews=false --out out/prior/l1train
	touch out/prior/l1train/.done
fi
head="out/prior/lap-$lap-cov.safetensors"
# fit-covariance resumes an unfinished head but refits a finished one: the
# .done marker keeps a rerun from redoing it.
if [[ ! -f "$head.done" ]]; then
	"$bin" prior fit-covariance --prior "$src" --data out/prior/l1train --out "$head" --steps 1500 --batch 4 --crop 64
	touch "$head.done"
fi
cp "$head" priors/builtin/default.safetensors
cp "$run/laps.json" priors/builtin/laps.json
cp "$src.qc.json" priors/builtin/default.safetensors.qc.json
go test ./priors/builtin/
go build -o "$bin" ./cmd/kspaced # embeds the new prior
"$bin" prior show | head -20
