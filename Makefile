# kspaced — see README.md. `make demo` and `make test` work on a fresh Debian
# machine with Go: scripts/deps.sh installs (as root) or names the Debian
# packages each target needs (build: HDF5 and OpenBLAS only; test: the
# reference tools as well).
GO ?= go
export PATH := /usr/local/go/bin:$(PATH)
BIN := bin/kspaced
DEMO_OUT ?= out/demo
# The packages whose concurrency the race detector checks (the daemon and the
# commands that drive it).
RACE_PKGS := ./daemon/... ./cmd/...

.PHONY: all build demo prior ship-prior test test-short test-race lint vet bench bench-fftw gpu-check build-cuda clean

all: build

build:
	@scripts/deps.sh build
	$(GO) build -o $(BIN) ./cmd/kspaced

demo: build
	@scripts/deps.sh demo
	@scripts/demo.sh $(BIN) $(DEMO_OUT)

# The default prior (configs/prior-default.yaml): the simulated archive, then
# kspaced retrain into train/default-prior/, resumably (about 10 h on two
# idle cores; docs/bench/prior-recipe.md). Rerun to continue.
prior:
	@scripts/deps.sh demo
	RUN=train/default-prior scripts/train-prior.sh out/prior

# Embed network lap LAP of the default-prior run as the built-in prior, with
# a diagonal covariance head fitted to it and its QC calibration
# (scripts/ship-prior.sh; resumable).
ship-prior:
	@test -n "$(LAP)" || { echo "usage: make ship-prior LAP=NN (a network lap of train/default-prior)" >&2; exit 2; }
	scripts/ship-prior.sh $(LAP)

# gofmt, go mod tidy, and vet of both builds (the CUDA build compiles without
# CUDA headers: internal/gpu/cuda_decls.h).
lint:
	@test -z "$$(gofmt -l . | tee /dev/stderr)" || { echo "gofmt: the files above need formatting" >&2; exit 1; }
	$(GO) mod tidy -diff
	$(GO) vet ./...
	$(GO) vet -tags cuda ./...

vet: lint

# KSPACED_REQUIRE_PEERS=1 turns a missing reference tool (BART, dcmtk, …)
# into a failure instead of a skip.
test:
	@scripts/deps.sh test
	$(MAKE) lint
	KSPACED_REQUIRE_PEERS=1 $(GO) test -timeout 60m ./...
	$(MAKE) test-race

# The fast lane: skips the long end-to-end and evidence tests.
test-short:
	@scripts/deps.sh test
	$(GO) test -short ./...

test-race:
	KSPACED_REQUIRE_PEERS=1 $(GO) test -race -timeout 30m $(RACE_PKGS)

bench: build
	$(GO) test -run '^$$' -bench . -benchtime 2x ./fft ./mri/... ./priors/...
	$(BIN) bench

# The FFT side by side with FFTW (Debian libfftw3-dev), same batch, same threads.
bench-fftw:
	@scripts/deps.sh test
	$(GO) test -tags fftw -run '^$$' -bench 'FFT$$|SideBySide' -benchtime 30x ./fft/

build-cuda:
	@scripts/deps.sh build
	$(GO) build -tags cuda -o bin/kspaced-cuda ./cmd/kspaced

gpu-check:
	$(GO) test -tags cuda ./...

clean:
	rm -rf bin out
