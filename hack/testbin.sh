#!/usr/bin/env bash
# Builds the test control plane (etcd, kube-apiserver, kube-controller-manager, kubectl, helm) from
# their Go modules into a cache outside the repo, keyed by version. Reuses what is already built.
#
#   hack/testbin.sh            build what is missing, print the bin directory
#   hack/testbin.sh --print    print the bin directory only (non-zero if incomplete)
#
# Why a wrapper module: k8s.io/kubernetes replaces every staging module (k8s.io/api, ...) with a
# local ./staging path, so `go install k8s.io/kubernetes/cmd/...@v` fails. The wrapper requires
# k8s.io/kubernetes and replaces each staging module with its released v0.Y.Z; the list of replaces
# is generated from the go.mod the proxy serves, never typed by hand.
set -euo pipefail

K8S_VERSION="${K8S_VERSION:-v1.37.2}"
ETCD_VERSION="${ETCD_VERSION:-v3.6.16}"
HELM_VERSION="${HELM_VERSION:-v3.22.0}"
CACHE="${KSLIM_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/kslim}"
BIN="$CACHE/testbin/k8s-$K8S_VERSION-etcd-$ETCD_VERSION-helm-$HELM_VERSION"
export GOTOOLCHAIN=local GOFLAGS=-mod=mod CGO_ENABLED=0

NEEDED=(etcd kube-apiserver kube-controller-manager kubectl helm)

complete() { for b in "${NEEDED[@]}"; do [ -x "$BIN/$b" ] || return 1; done; }

if [ "${1:-}" = "--print" ]; then complete && echo "$BIN"; exit $?; fi
if complete; then echo "$BIN"; exit 0; fi

step() { echo "testbin: [$1] $2" >&2; }
fail() {
  echo "testbin: FAILED at step '$1'." >&2
  echo "testbin: retry with: hack/testbin.sh   (or: make testbin). Partial work is never kept in $BIN." >&2
  exit 1
}

command -v go >/dev/null || { echo "testbin: Go is not installed; install Go >= 1.26 and run 'make testbin' again." >&2; exit 1; }
mkdir -p "$BIN"
# One build at a time per cache (several checkouts or sessions may share it); a second caller waits,
# then finds the binaries built.
if command -v flock >/dev/null; then
  exec 9>"$CACHE/testbin/.lock"
  flock -n 9 || { step lock "another build holds $CACHE/testbin/.lock; waiting"; flock 9; }
  if complete; then echo "$BIN"; exit 0; fi
fi
# A build interrupted (Ctrl-C, failure) must not leave a partial binary behind, even under a temp name.
trap 'rm -f "$BIN"/.*.tmp' EXIT
WORK="$CACHE/testbin/work"
mkdir -p "$WORK"

# build_to PKG NAME [LDFLAGS]: go build into a temp name in $BIN, then rename (never a half binary).
build_to() {
  local pkg=$1 name=$2 ldflags=${3:-}
  [ -x "$BIN/$name" ] && { step build "$name: cached"; return 0; }
  step build "$name ($pkg) ... (cold: several minutes on 2 cores)"
  local t0=$SECONDS
  go build -trimpath -ldflags "-s -w $ldflags" -o "$BIN/.$name.tmp" "$pkg" || fail "go build $name"
  mv "$BIN/.$name.tmp" "$BIN/$name"
  step build "$name done in $((SECONDS - t0))s"
}

# ---- etcd: its own wrapper module so its etcd client versions never mix with kubernetes'.
if [ ! -x "$BIN/etcd" ]; then
  d="$WORK/etcd-$ETCD_VERSION"; mkdir -p "$d"; cd "$d"
  step etcd-module "go.etcd.io/etcd/server/v3@$ETCD_VERSION"
  [ -f go.mod ] || go mod init kslim.dev/testbin/etcd >/dev/null 2>&1 || fail "go mod init (etcd)"
  cat > tools.go <<GO
//go:build tools
package tools

import _ "go.etcd.io/etcd/server/v3"
GO
  go mod edit -require="go.etcd.io/etcd/server/v3@$ETCD_VERSION" || fail "go mod edit (etcd)"
  go mod tidy >/dev/null 2>&1 || go mod download go.etcd.io/etcd/server/v3 || fail "go mod download etcd (retry; needs the Go module proxy)"
  go get "go.etcd.io/etcd/server/v3@$ETCD_VERSION" >/dev/null 2>&1 || fail "go get go.etcd.io/etcd/server/v3@$ETCD_VERSION"
  build_to go.etcd.io/etcd/server/v3 etcd
fi

# ---- helm: no replace directives; a plain build works. Version ldflags so it reports itself.
if [ ! -x "$BIN/helm" ]; then
  d="$WORK/helm-$HELM_VERSION"; mkdir -p "$d"; cd "$d"
  step helm-module "helm.sh/helm/v3@$HELM_VERSION"
  [ -f go.mod ] || go mod init kslim.dev/testbin/helm >/dev/null 2>&1 || fail "go mod init (helm)"
  go get "helm.sh/helm/v3@$HELM_VERSION" >/dev/null 2>&1 || fail "go get helm.sh/helm/v3@$HELM_VERSION"
  minor=$(echo "$K8S_VERSION" | cut -d. -f2)
  build_to helm.sh/helm/v3/cmd/helm helm \
    "-X helm.sh/helm/v3/internal/version.version=$HELM_VERSION -X helm.sh/helm/v3/pkg/chartutil.k8sVersionMajor=1 -X helm.sh/helm/v3/pkg/chartutil.k8sVersionMinor=$minor"
fi

# ---- kubernetes: wrapper module with generated replace lines.
d="$WORK/k8s-$K8S_VERSION"; mkdir -p "$d"; cd "$d"
if [ ! -f .ready ]; then
  step k8s-module "download k8s.io/kubernetes@$K8S_VERSION go.mod"
  gomod=$(go mod download -json "k8s.io/kubernetes@$K8S_VERSION" | sed -n 's/.*"GoMod": "\(.*\)".*/\1/p') \
    || fail "go mod download k8s.io/kubernetes@$K8S_VERSION"
  [ -n "$gomod" ] && [ -f "$gomod" ] || fail "locate go.mod of k8s.io/kubernetes@$K8S_VERSION"
  rm -f go.mod go.sum
  go mod init kslim.dev/testbin/k8s >/dev/null 2>&1 || fail "go mod init (k8s)"
  staging_version="v0.${K8S_VERSION#v1.}"
  args=(-require="k8s.io/kubernetes@$K8S_VERSION")
  n=0
  while read -r mod; do
    args+=(-replace="$mod=$mod@$staging_version"); n=$((n + 1))
  done < <(sed -n 's#^[[:space:]]*\(k8s.io/[a-z0-9-]*\) => ./staging/.*#\1#p' "$gomod")
  [ "$n" -gt 10 ] || fail "read staging replaces from $gomod (found $n)"
  step k8s-module "$n staging modules replaced with $staging_version"
  go mod edit "${args[@]}" || fail "go mod edit (k8s)"
  cat > tools.go <<GO
//go:build tools
package tools

import (
	_ "k8s.io/kubernetes/cmd/kube-apiserver"
	_ "k8s.io/kubernetes/cmd/kube-controller-manager"
	_ "k8s.io/kubernetes/cmd/kubectl"
)
GO
  step k8s-module "go mod tidy (downloads a few hundred MB on a cold machine)"
  go mod tidy || fail "go mod tidy (k8s wrapper)"
  touch .ready
fi
minor=$(echo "$K8S_VERSION" | cut -d. -f2)
LD="-X k8s.io/component-base/version.gitVersion=$K8S_VERSION -X k8s.io/component-base/version.gitMajor=1 -X k8s.io/component-base/version.gitMinor=$minor -X k8s.io/client-go/pkg/version.gitVersion=$K8S_VERSION -X k8s.io/client-go/pkg/version.gitMajor=1 -X k8s.io/client-go/pkg/version.gitMinor=$minor"
build_to k8s.io/kubernetes/cmd/kube-apiserver kube-apiserver "$LD"
build_to k8s.io/kubernetes/cmd/kube-controller-manager kube-controller-manager "$LD"
build_to k8s.io/kubernetes/cmd/kubectl kubectl "$LD"

complete || fail "final check"
step done "all binaries in $BIN"
echo "$BIN"
