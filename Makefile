# kspaced — see README.md. `make demo` and `make test` work on a fresh Debian
# machine with Go: scripts/deps.sh installs (as root) or names the Debian
# packages the build and the tests need.
GO ?= go
export PATH := /usr/local/go/bin:$(PATH)
BIN := bin/kspaced
DEMO_OUT ?= out/demo

.PHONY: all build deps demo test vet bench bench-fftw gpu-check build-cuda clean

all: build

deps:
	@scripts/deps.sh

build: deps
	$(GO) build -o $(BIN) ./cmd/kspaced

demo: build
	@scripts/demo.sh $(BIN) $(DEMO_OUT)

vet:
	$(GO) vet ./...

# KSPACED_REQUIRE_PEERS=1 turns a missing reference tool (BART, dcmtk, …)
# into a failure instead of a skip.
test: deps vet
	KSPACED_REQUIRE_PEERS=1 $(GO) test -timeout 60m ./...

bench: build
	$(GO) test -run '^$$' -bench . -benchtime 2x ./fft ./mri/... ./priors/...
	$(BIN) bench

# The FFT side by side with FFTW (Debian libfftw3-dev), same batch, same threads.
bench-fftw: deps
	$(GO) test -tags fftw -run '^$$' -bench 'FFT$$|SideBySide' -benchtime 30x ./fft/

build-cuda: deps
	$(GO) build -tags cuda -o bin/kspaced-cuda ./cmd/kspaced

gpu-check:
	$(GO) test -tags cuda ./...

clean:
	rm -rf bin out
