#!/usr/bin/env bash
# Installs the system tools the tests use that are neither Python packages nor Go-built:
# promtool and prometheus (Debian's `prometheus` package). Idempotent.
set -euo pipefail
if command -v promtool >/dev/null && command -v prometheus >/dev/null; then exit 0; fi
SUDO=""
[ "$(id -u)" = 0 ] || SUDO=sudo
echo "tools: installing Debian's prometheus package (promtool + prometheus server) ..." >&2
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq || { echo "tools: apt-get update failed; retry: make tools" >&2; exit 1; }
$SUDO apt-get install -y -qq --no-install-recommends prometheus >/dev/null \
  || { echo "tools: apt-get install prometheus failed; retry: make tools" >&2; exit 1; }
# The package starts a system service on install where an init system exists; tests run their own.
$SUDO systemctl disable --now prometheus >/dev/null 2>&1 || true
command -v promtool >/dev/null || { echo "tools: promtool missing after install" >&2; exit 1; }
