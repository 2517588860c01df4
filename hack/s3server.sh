#!/usr/bin/env bash
# Builds the S3-compatible server the storage tests run against (MinIO, from its Go module) into the
# same cache as the test control plane, keyed by its version. Reuses what is already built.
#
#   hack/s3server.sh            build it if missing, print the path of the binary
#   hack/s3server.sh --print    print the path only (non-zero if not built)
#
# Why MinIO: it is a real S3 server (signatures, errors, multipart) and builds with `go build` from
# the module proxy alone; the tests must not run against a mock of the S3 API. It is only a test and
# dev tool: built locally, never linked into or shipped with kslim (its licence is the AGPL).
# MinIO publishes no semver module versions, so the version is the proxy's pseudo-version.
set -euo pipefail

MINIO_VERSION="${MINIO_VERSION:-v0.0.0-20260212201848-7aac2a2c5b7c}"
CACHE="${KSLIM_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/kslim}"
DIR="$CACHE/testbin/minio-$MINIO_VERSION"
BIN="$DIR/minio"
export GOTOOLCHAIN=local GOFLAGS=-mod=mod CGO_ENABLED=0

if [ "${1:-}" = "--print" ]; then [ -x "$BIN" ] && echo "$BIN"; exit $?; fi
if [ -x "$BIN" ]; then echo "$BIN"; exit 0; fi

say() { echo "s3server: $*" >&2; }
command -v go >/dev/null || { say "Go is not installed; install Go >= 1.26 and run 'make s3server' again."; exit 1; }
mkdir -p "$DIR"
# One build at a time per cache; a second caller waits, then finds the binary.
if command -v flock >/dev/null; then
  exec 9>"$DIR/.lock"
  flock -n 9 || { say "another build holds $DIR/.lock; waiting"; flock 9; }
  if [ -x "$BIN" ]; then echo "$BIN"; exit 0; fi
fi
trap 'rm -f "$DIR/.minio.tmp"' EXIT

# A wrapper module that requires MinIO at the pinned version: `go build` of a module's main package
# then uses exactly MinIO's own go.mod requirements.
WORK="$CACHE/testbin/work/minio-$MINIO_VERSION"
mkdir -p "$WORK"; cd "$WORK"
[ -f go.mod ] || go mod init kslim.dev/testbin/minio >/dev/null 2>&1 || { say "go mod init failed"; exit 1; }
say "go get github.com/minio/minio@$MINIO_VERSION (cold: downloads ~300 MB of modules)"
t0=$SECONDS
go get "github.com/minio/minio@$MINIO_VERSION" >/dev/null 2>&1 \
  || { say "go get github.com/minio/minio@$MINIO_VERSION failed (needs the Go module proxy); retry: hack/s3server.sh"; exit 1; }
say "go build (cold: several minutes on 2 cores)"
go build -trimpath -ldflags "-s -w" -o "$DIR/.minio.tmp" github.com/minio/minio \
  || { say "go build failed; retry: hack/s3server.sh"; exit 1; }
mv "$DIR/.minio.tmp" "$BIN"
say "built in $((SECONDS - t0))s: $BIN"
echo "$BIN"
