#!/usr/bin/env bash
# Creates/updates .venv with everything the demo and the tests need (operator + runner + CPU Paddle + dev
# tools). Idempotent: a stamp holding the hash of pyproject.toml, the constraints file and
# requirements/runner-nodeps.txt skips pip when nothing changed. Wheels come from pip's own cache (outside
# the repo) after the first install. With the runner extra, the packages whose metadata is broken
# (PaddleDetection's paddledet) are then installed from runner-nodeps.txt with --no-deps.
set -euo pipefail
cd "$(dirname "$0")/.."
PY="${PYTHON:-python3}"
VENV=.venv
EXTRAS="${KSLIM_EXTRAS:-operator,runner,cpu,dev}"
CONSTRAINTS=requirements/constraints.txt
NODEPS=requirements/runner-nodeps.txt
want=$(cat pyproject.toml "$CONSTRAINTS" "$NODEPS" 2>/dev/null | sha256sum | cut -c1-16)-$EXTRAS
stamp="$VENV/.kslim-stamp"
if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$want" ]; then exit 0; fi

steps=2
case ",$EXTRAS," in *,runner,*) steps=3 ;; esac

command -v "$PY" >/dev/null || { echo "venv: $PY not found; install Python 3.10 or 3.11" >&2; exit 1; }
if [ ! -x "$VENV/bin/python" ]; then
  echo "venv: [1/$steps] creating $VENV with $("$PY" --version)" >&2
  "$PY" -m venv "$VENV" || { echo "venv: 'python3 -m venv' failed; install python3-venv and retry: make venv" >&2; exit 1; }
fi
echo "venv: [2/$steps] installing kslim[$EXTRAS] (first time: ~250 MB of wheels incl. Paddle, 2-5 min)" >&2
args=(-e ".[$EXTRAS]")
[ -f "$CONSTRAINTS" ] && args+=(-c "$CONSTRAINTS")
"$VENV/bin/python" -m pip install --disable-pip-version-check --progress-bar on "${args[@]}" \
  || { echo "venv: pip install failed (see above); retry with: make venv" >&2; exit 1; }
if [ "$steps" = 3 ]; then
  echo "venv: [3/3] installing $NODEPS with --no-deps (their declared dependencies are broken)" >&2
  [ -f "$NODEPS" ] || { echo "venv: $NODEPS is missing; restore it from git and retry: make venv" >&2; exit 1; }
  nodeps=(--no-deps -r "$NODEPS")
  [ -f "$CONSTRAINTS" ] && nodeps+=(-c "$CONSTRAINTS")
  "$VENV/bin/python" -m pip install --disable-pip-version-check --progress-bar on "${nodeps[@]}" \
    || { echo "venv: pip install --no-deps -r $NODEPS failed (see above); retry with: make venv" >&2; exit 1; }
fi
echo "$want" > "$stamp"
