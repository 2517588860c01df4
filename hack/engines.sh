#!/usr/bin/env bash
# Builds the workload engines the multi-node and queueing tests run against, Kubeflow training-operator
# (PaddleJob) and Kueue, from their Go modules into the same cache as the test control plane, keyed by
# their versions, and copies beside them the manifests the tests install from the same module versions.
# Reuses what is already built.
#
#   hack/engines.sh            build what is missing, print the directory
#   hack/engines.sh --print    print the directory only (non-zero if incomplete)
#
# The directory holds:
#   training-operator, kueue                      the binaries
#   manifests/training-operator/crds/             kubeflow.org_paddlejobs.yaml (manifests/base/crds/)
#   manifests/training-operator/webhook/          manifests.yaml, patch.yaml (manifests/base/webhook/)
#   manifests/kueue/crds/                         every CRD of config/components/crd/bases/
#   manifests/kueue/crd/                          kustomization.yaml + patches/ (the conversion webhooks)
#   manifests/kueue/webhook/                      manifests.yaml (config/components/webhook/)
# tests/support/engines.py runs them against the test control plane.
#
# Why a wrapper module per engine (as hack/s3server.sh does): `go build` runs in a module we own, so
# go.mod/go.sum updates land there and never in the module cache (read-only, and shared). Neither
# go.mod has replace directives, so the wrapper's build list is the engine's own.
set -euo pipefail

TRAINING_OPERATOR_VERSION="${TRAINING_OPERATOR_VERSION:-v1.8.1}"
KUEUE_VERSION="${KUEUE_VERSION:-v0.17.0}"
CACHE="${KSLIM_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/kslim}"
DIR="$CACHE/testbin/engines-training-operator-$TRAINING_OPERATOR_VERSION-kueue-$KUEUE_VERSION"
export GOTOOLCHAIN=local GOFLAGS=-mod=mod CGO_ENABLED=0

TO_MODULE=github.com/kubeflow/training-operator
KUEUE_MODULE=sigs.k8s.io/kueue
NEEDED=(
  training-operator
  kueue
  manifests/training-operator/crds/kubeflow.org_paddlejobs.yaml
  manifests/training-operator/webhook/manifests.yaml
  manifests/kueue/crds/kueue.x-k8s.io_workloads.yaml
  manifests/kueue/crd/kustomization.yaml
  manifests/kueue/webhook/manifests.yaml
)

complete() { for f in "${NEEDED[@]}"; do [ -s "$DIR/$f" ] || return 1; done; [ -x "$DIR/training-operator" ] && [ -x "$DIR/kueue" ]; }

if [ "${1:-}" = "--print" ]; then complete && echo "$DIR"; exit $?; fi
if complete; then echo "$DIR"; exit 0; fi

step() { echo "engines: [$1] $2" >&2; }
fail() {
  echo "engines: FAILED at step '$1'." >&2
  echo "engines: retry with: hack/engines.sh   (or: make engines). Partial work is never kept in $DIR." >&2
  exit 1
}

command -v go >/dev/null || { echo "engines: Go is not installed; install Go >= 1.26 and run 'make engines' again." >&2; exit 1; }
mkdir -p "$DIR"
# One build at a time per cache; a second caller waits, then finds everything built.
if command -v flock >/dev/null; then
  exec 9>"$DIR/.lock"
  flock -n 9 || { step lock "another build holds $DIR/.lock; waiting"; flock 9; }
  if complete; then echo "$DIR"; exit 0; fi
fi
# An interrupted build (Ctrl-C, failure) leaves no half binary or half manifest copy behind.
trap 'rm -rf "$DIR"/.*.tmp' EXIT

# wrapper MODULE VERSION PKG: a wrapper module requiring MODULE@VERSION (downloads it); prints its Dir.
wrapper() {
  local module=$1 version=$2 pkg=$3 name=${1##*/}
  local work="$CACHE/testbin/work/$name-$version"
  mkdir -p "$work"; cd "$work"
  [ -f go.mod ] || go mod init "kslim.dev/testbin/$name" >/dev/null 2>&1 || fail "go mod init ($name)"
  step "$name-module" "go get $pkg@$version (cold: downloads a few hundred MB of modules)"
  go get "$pkg@$version" >go-get.log 2>&1 \
    || { tail -n 5 go-get.log >&2; fail "go get $pkg@$version (needs the Go module proxy; log: $work/go-get.log)"; }
  local dir
  dir=$(go list -m -f '{{.Dir}}' "$module") && [ -d "$dir" ] || fail "locate the downloaded $module@$version"
  echo "$dir"
}

# build_to PKG NAME [LDFLAGS]: go build (in the current wrapper) into a temp name, then rename.
build_to() {
  local pkg=$1 name=$2 ldflags=${3:-}
  [ -x "$DIR/$name" ] && { step build "$name: cached"; return 0; }
  step build "$name ($pkg) ... (cold: several minutes on 2 cores)"
  local t0=$SECONDS
  go build -trimpath -ldflags "-s -w $ldflags" -o "$DIR/.$name.tmp" "$pkg" || fail "go build $name"
  mv "$DIR/.$name.tmp" "$DIR/$name"
  step build "$name done in $((SECONDS - t0))s"
}

# copy_manifests NAME SRC_DIR REL_PATH...: copy files/dirs under SRC_DIR to manifests/NAME, all at once.
copy_manifests() {
  local name=$1 src=$2; shift 2
  local tmp="$DIR/.manifests-$name.tmp" rel
  rm -rf "$tmp"; mkdir -p "$tmp"
  for rel in "$@"; do
    [ -e "$src/${rel%%=*}" ] || fail "find ${rel%%=*} in $src"
    mkdir -p "$tmp/$(dirname "${rel##*=}")"
    cp -R "$src/${rel%%=*}" "$tmp/${rel##*=}" || fail "copy ${rel%%=*}"
  done
  chmod -R u+w "$tmp"  # the module cache is read-only; our copies need not be
  mkdir -p "$DIR/manifests"; rm -rf "$DIR/manifests/$name"
  mv "$tmp" "$DIR/manifests/$name"
}

# ---- Kubeflow training-operator (the v1 operator: PaddleJob, PyTorchJob, ...)
src=$(wrapper "$TO_MODULE" "$TRAINING_OPERATOR_VERSION" "$TO_MODULE/cmd/training-operator.v1")
cd "$CACHE/testbin/work/training-operator-$TRAINING_OPERATOR_VERSION"
build_to "$TO_MODULE/cmd/training-operator.v1" training-operator
copy_manifests training-operator "$src" \
  manifests/base/crds/kubeflow.org_paddlejobs.yaml=crds/kubeflow.org_paddlejobs.yaml \
  manifests/base/webhook/manifests.yaml=webhook/manifests.yaml \
  manifests/base/webhook/patch.yaml=webhook/patch.yaml

# ---- Kueue
src=$(wrapper "$KUEUE_MODULE" "$KUEUE_VERSION" "$KUEUE_MODULE/cmd/kueue")
cd "$CACHE/testbin/work/kueue-$KUEUE_VERSION"
build_to "$KUEUE_MODULE/cmd/kueue" kueue "-X $KUEUE_MODULE/pkg/version.GitVersion=$KUEUE_VERSION"
copy_manifests kueue "$src" \
  config/components/crd/bases=crds \
  config/components/crd/kustomization.yaml=crd/kustomization.yaml \
  config/components/crd/patches=crd/patches \
  config/components/webhook/manifests.yaml=webhook/manifests.yaml

complete || fail "final check"
step done "all engines in $DIR"
echo "$DIR"
