#!/usr/bin/env bash
# Creates/updates .venv with everything the demo and the tests need (operator + runner + CPU Paddle + dev
# tools). Idempotent: a stamp holding the hash of pyproject.toml and the constraints file skips pip
# when nothing changed. Wheels come from pip's own cache (outside the repo) after the first install.
set -euo pipefail
cd "$(dirname "$0")/.."
PY="${PYTHON:-python3}"
VENV=.venv
EXTRAS="${KSLIM_EXTRAS:-operator,runner,cpu,dev}"
CONSTRAINTS=requirements/constraints.txt
want=$(cat pyproject.toml "$CONSTRAINTS" 2>/dev/null | sha256sum | cut -c1-16)-$EXTRAS
stamp="$VENV/.kslim-stamp"
if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$want" ]; then exit 0; fi

command -v "$PY" >/dev/null || { echo "venv: $PY not found; install Python 3.10 or 3.11" >&2; exit 1; }
if [ ! -x "$VENV/bin/python" ]; then
  echo "venv: [1/2] creating $VENV with $("$PY" --version)" >&2
  "$PY" -m venv "$VENV" || { echo "venv: 'python3 -m venv' failed; install python3-venv and retry: make venv" >&2; exit 1; }
fi
echo "venv: [2/2] installing kslim[$EXTRAS] (first time: ~250 MB of wheels incl. Paddle, 2-5 min)" >&2
args=(-e ".[$EXTRAS]")
[ -f "$CONSTRAINTS" ] && args+=(-c "$CONSTRAINTS")
"$VENV/bin/python" -m pip install --disable-pip-version-check --progress-bar on "${args[@]}" \
  || { echo "venv: pip install failed (see above); retry with: make venv" >&2; exit 1; }
echo "$want" > "$stamp"
