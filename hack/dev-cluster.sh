#!/usr/bin/env bash
# A local dev cluster: the test control plane (etcd + kube-apiserver + kube-controller-manager), the
# CRDs, the project's Helm chart (its Deployment scaled to 0: ServiceAccount, RBAC, Service), the
# operator as a local process under that ServiceAccount, and the local kubelet that runs runner pods
# as local processes. All state lives in .kslim/dev (git-ignored).
#
#   hack/dev-cluster.sh up       # start what is not running yet (never a second set)
#   hack/dev-cluster.sh status   # what runs
#   hack/dev-cluster.sh down     # stop exactly what `up` started
#
# A test and demo setup, not a way to run jobs in production (see README: Run on a real cluster).
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
DEV_DIR="${KSLIM_DEV_DIR:-$ROOT/.kslim/dev}"
PY="$ROOT/.venv/bin/python"
NAMESPACE=kslim-system
RELEASE=kslim
RUNNER_IMAGE_REPOSITORY=kslim/runner   # what the local kubelet accepts as the runner image
RUNNER_IMAGE_TAG=dev
ARTIFACTS_CLAIM=kslim-artifacts         # examples/quickstart.yaml writes to pvc://kslim-artifacts/...
KUBECONFIG_FILE="$DEV_DIR/kubeconfig"
OPERATOR_KUBECONFIG="$DEV_DIR/operator.kubeconfig"
LOGS="$DEV_DIR/logs"
STOP_TIMEOUT=20
WAIT_TIMEOUT="${KSLIM_DEV_WAIT_TIMEOUT:-180}"  # seconds each wait below may take (raise on a slow machine)

say() { echo "dev-cluster: $*" >&2; }
die() { say "error: $*"; exit 1; }

tools() {
  [ -x "$PY" ] || die "$PY missing: run \`make venv\`"
  BIN=$(hack/testbin.sh --print 2>/dev/null) || die "control plane binaries missing: run \`make testbin\`"
  KUBECTL="$BIN/kubectl"
  HELM="$BIN/helm"
}

kc() { "$KUBECTL" --kubeconfig="$KUBECONFIG_FILE" --cache-dir="$DEV_DIR/kubectl-cache" "$@"; }

# ---- processes we start: pid files, checked against the command line (pid reuse)

pid_of() {  # pid_of NAME MARKER: the recorded pid if that process still runs MARKER
  local file="$DEV_DIR/$1.pid" pid
  [ -f "$file" ] || return 1
  pid=$(cat "$file")
  [ -r "/proc/$pid/cmdline" ] && tr '\0' ' ' <"/proc/$pid/cmdline" | grep -q -- "$2" || return 1
  echo "$pid"
}

kubelet_pid() { pid_of kubelet "tests/support/kubelet.py"; }
operator_pid() { pid_of operator "-m kslim_operator"; }

control_plane_up() { "$PY" tests/support/controlplane.py status --dir "$DEV_DIR" >/dev/null 2>&1; }

stop_pid() {  # stop_pid NAME PID: SIGTERM, then SIGKILL after STOP_TIMEOUT seconds
  local name=$1 pid=$2 waited=0
  kill -TERM "$pid" 2>/dev/null || return 0
  while kill -0 "$pid" 2>/dev/null && [ "$waited" -lt $((STOP_TIMEOUT * 10)) ]; do
    sleep 0.1
    waited=$((waited + 1))
  done
  if kill -0 "$pid" 2>/dev/null; then
    say "$name (pid $pid) did not stop in ${STOP_TIMEOUT}s; killing it"
    kill -KILL "$pid" 2>/dev/null || true
  fi
}

# ---- waiting: each wait polls a check until it passes, with a deadline and a clear message

# wait_for WHAT LOG CHECK...: run CHECK until it exits 0. It exits 2 when waiting is pointless (the
# process behind it died). Dies after WAIT_TIMEOUT seconds, or at once on 2, with LOG's tail.
wait_for() {
  local what=$1 log=$2 rc deadline=$((SECONDS + WAIT_TIMEOUT))
  shift 2
  while true; do
    rc=0
    "$@" || rc=$?
    [ "$rc" -eq 0 ] && return 0
    if [ "$rc" -eq 2 ] || [ "$SECONDS" -ge "$deadline" ]; then
      if [ -n "$log" ] && [ -f "$log" ]; then tail -n 30 "$log" >&2 || true; fi
      if [ "$rc" -eq 2 ]; then die "$what: its process exited (log: ${log:-none})"; fi
      die "$what: not there after ${WAIT_TIMEOUT}s (log: ${log:-none}; a slow machine: KSLIM_DEV_WAIT_TIMEOUT=600)"
    fi
    sleep 0.5
  done
}

# The API server serves and is ready, and the namespace `default` and its ServiceAccount exist (made
# by the API server and the serviceaccount controller right after start; pods need the account).
api_ready() {
  kc get --raw=/readyz --request-timeout=5s >/dev/null 2>&1 &&
    kc get serviceaccount default -n default --request-timeout=5s >/dev/null 2>&1
}

# Every CRD of crds/ is Established. Right after `apply` a CRD may have no conditions at all yet,
# which `kubectl wait --for=condition=Established` turned into an error; here it is just "not yet".
crds_established() {
  local names name status
  names=$(kc get -f crds/ -o name --request-timeout=5s 2>/dev/null) && [ -n "$names" ] || return 1
  for name in $names; do
    status=$(kc get "$name" --request-timeout=5s \
      -o jsonpath='{.status.conditions[?(@.type=="Established")].status}' 2>/dev/null) || return 1
    [ "$status" = True ] || return 1
  done
  kc get compressionjobs -A --request-timeout=5s >/dev/null 2>&1  # and served
}

node_ready() {
  kubelet_pid >/dev/null || return 2
  kc get node kslim-local --request-timeout=5s \
    -o jsonpath='{.status.conditions[?(@.type=="Ready")].status}' 2>/dev/null | grep -q True
}

operator_ready() {  # its kslim_operator_ready gauge is 1 (set once Kopf has started it)
  operator_pid >/dev/null || return 2
  "$PY" - "$(cat "$DEV_DIR/metrics.port")" 2>/dev/null <<'PYEOF'
import sys
import urllib.request

text = urllib.request.urlopen(f"http://127.0.0.1:{sys.argv[1]}/metrics", timeout=2).read().decode()
sys.exit(0 if any(line.split() == ["kslim_operator_ready", "1.0"] for line in text.splitlines()) else 1)
PYEOF
}

free_port() { "$PY" -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }

start_background() {  # start_background NAME CMD...: own session, log in logs/NAME.log, pid in NAME.pid
  local name=$1
  shift
  setsid "$@" >"$LOGS/$name.log" 2>&1 </dev/null &
  echo $! >"$DEV_DIR/$name.pid"
}

# ---- the pieces

start_control_plane() {
  say "starting the control plane (etcd, kube-apiserver, kube-controller-manager) ..."
  "$PY" tests/support/controlplane.py down --dir "$DEV_DIR" >/dev/null 2>&1 || true  # stale state
  rm -f "$DEV_DIR/configured"
  "$PY" tests/support/controlplane.py up --dir "$DEV_DIR" >/dev/null
}

configure_cluster() {  # idempotent; recorded in $DEV_DIR/configured once it all worked
  say "applying crds/ ..."
  kc apply --server-side --force-conflicts --field-manager=kslim-dev -f crds/ >/dev/null
  wait_for "the CRDs (Established, served)" "$LOGS/kube-apiserver.log" crds_established
  say "installing the Helm chart (ServiceAccount, RBAC, Service; the operator runs as a local process) ..."
  # --skip-crds: crds/ at the top is the source (applied above). The operator runs as a local
  # process below, under the chart's ServiceAccount, so the chart's RBAC is what it gets; the
  # chart's Deployment gets 0 replicas (the local kubelet only runs the runner anyway).
  "$HELM" upgrade --install "$RELEASE" helm/kslim --kubeconfig "$KUBECONFIG_FILE" \
    --namespace "$NAMESPACE" --create-namespace --skip-crds \
    --set operator.leaderElection=false \
    --set runner.image.repository="$RUNNER_IMAGE_REPOSITORY" --set runner.image.tag="$RUNNER_IMAGE_TAG" \
    --set runner.image.pullPolicy=Never --set operator.replicas=0 >/dev/null
  write_operator_kubeconfig
  say "creating PersistentVolumeClaim $ARTIFACTS_CLAIM in namespace default (the quick start's output) ..."
  kc apply -f - >/dev/null <<EOF
apiVersion: v1
kind: PersistentVolumeClaim
metadata:
  name: $ARTIFACTS_CLAIM
  namespace: default
spec:
  accessModes: [ReadWriteOnce]
  resources:
    requests:
      storage: 10Gi
EOF
  touch "$DEV_DIR/configured"
}

write_operator_kubeconfig() {
  # The chart's ServiceAccount, through a token: the operator gets exactly the chart's RBAC.
  local sa server ca token
  sa=$(kc get serviceaccount -n "$NAMESPACE" -l "app.kubernetes.io/instance=$RELEASE" \
    -o jsonpath='{.items[0].metadata.name}')
  [ -n "$sa" ] || die "the chart created no ServiceAccount in $NAMESPACE"
  server=$(kc config view --raw --minify -o jsonpath='{.clusters[0].cluster.server}')
  ca=$(kc config view --raw --minify -o jsonpath='{.clusters[0].cluster.certificate-authority-data}')
  token=$(kc create token "$sa" -n "$NAMESPACE" --duration=8760h)
  rm -f "$OPERATOR_KUBECONFIG"
  local k=("$KUBECTL" --kubeconfig="$OPERATOR_KUBECONFIG")
  "${k[@]}" config set-cluster dev --server="$server" >/dev/null
  "${k[@]}" config set clusters.dev.certificate-authority-data "$ca" >/dev/null
  "${k[@]}" config set-credentials "$sa" --token="$token" >/dev/null
  "${k[@]}" config set-context dev --cluster=dev --user="$sa" --namespace="$NAMESPACE" >/dev/null
  "${k[@]}" config use-context dev >/dev/null
  chmod 600 "$OPERATOR_KUBECONFIG"
}

start_kubelet() {
  say "starting the local kubelet (runs runner pods as local processes) ..."
  start_background kubelet "$PY" tests/support/kubelet.py --kubeconfig "$KUBECONFIG_FILE" \
    --root "$DEV_DIR/kubelet" --runner-image "$RUNNER_IMAGE_REPOSITORY"
  wait_for "the local kubelet (node kslim-local Ready)" "$LOGS/kubelet.log" node_ready
}

start_operator() {
  local metrics health
  metrics=$(free_port)
  health=$(free_port)
  say "starting the operator (python -m kslim_operator, as ServiceAccount $NAMESPACE/$RELEASE) ..."
  start_background operator env KUBECONFIG="$OPERATOR_KUBECONFIG" \
    KSLIM_OPERATOR_IMAGE="$RUNNER_IMAGE_REPOSITORY:$RUNNER_IMAGE_TAG" \
    KSLIM_OPERATOR_IMAGE_PULL_POLICY=Never \
    KSLIM_OPERATOR_LEADER_ELECTION=false \
    KSLIM_OPERATOR_METRICS_PORT="$metrics" \
    KSLIM_OPERATOR_HEALTH_PORT="$health" \
    "$PY" -m kslim_operator
  echo "$metrics" >"$DEV_DIR/metrics.port"
  wait_for "the operator (kslim_operator_ready 1)" "$LOGS/operator.log" operator_ready
}

usage() {
  cat <<EOF

kslim dev cluster is running (state, logs: ${DEV_DIR#"$ROOT"/}).

  export KUBECONFIG=${KUBECONFIG_FILE#"$ROOT"/}
  kubectl apply -f examples/quickstart.yaml
  kubectl get cjob -w                        # stages, progress, AP and speed-up (cj is CronJob)
  kubectl logs -f job/quickstart             # the runner's log, served by the local kubelet
  curl -s http://127.0.0.1:$(cat "$DEV_DIR/metrics.port")/metrics | grep '^kslim_'

kubectl and helm: $BIN (add it to PATH).
S3 (MinIO): endpoint and keys in ${DEV_DIR#"$ROOT"/}/s3.json (README: a job reading from it).
Artifacts: ${DEV_DIR#"$ROOT"/}/kubelet/pvc/<claim>/...   Logs: ${LOGS#"$ROOT"/}/{operator,kubelet,kube-apiserver}.log
Stop everything: make dev-cluster-down
EOF
}

# ---- commands

cmd_up() {
  tools
  mkdir -p "$DEV_DIR" "$LOGS"
  local started=0
  if control_plane_up; then
    say "control plane already running"
  else
    # Our processes from a dead control plane are useless: stop them first.
    cmd_down_processes
    start_control_plane
    started=1
  fi
  wait_for "the API server (/readyz, namespace default and its ServiceAccount)" "$LOGS/kube-apiserver.log" api_ready
  if [ ! -f "$DEV_DIR/configured" ]; then configure_cluster; started=1; fi
  if kubelet_pid >/dev/null; then say "local kubelet already running (pid $(kubelet_pid))"; else start_kubelet; started=1; fi
  if operator_pid >/dev/null; then say "operator already running (pid $(operator_pid))"; else start_operator; started=1; fi
  # The S3 server (MinIO, `make s3server`) for jobs that read and write s3:// (README: local dev).
  "$PY" tests/support/s3server.py up --dir "$DEV_DIR" >&2 || die "the S3 server did not start (run \`make s3server\`)"
  # Its keys as the Secret examples/s3-dev.yaml names (spec.storage.s3.credentialsSecret).
  "$PY" -c 'import json, sys; d = json.load(open(sys.argv[1])); print(*(f"{k}={d[k]}" for k in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY")), sep="\n")' \
    "$DEV_DIR/s3.json" | kc create secret generic kslim-s3 --from-env-file=/dev/stdin --dry-run=client -o yaml \
    | kc apply -f - >/dev/null
  [ "$started" = 1 ] || say "nothing to start: everything was already running"
  usage
}

cmd_down_processes() {
  local pid
  if pid=$(operator_pid); then say "stopping the operator (pid $pid)"; stop_pid operator "$pid"; fi
  if pid=$(kubelet_pid); then say "stopping the local kubelet (pid $pid)"; stop_pid kubelet "$pid"; fi
  rm -f "$DEV_DIR/operator.pid" "$DEV_DIR/kubelet.pid" "$DEV_DIR/metrics.port"
}

cmd_down() {
  [ -x "$PY" ] || die "$PY missing: run \`make venv\`"
  [ -d "$DEV_DIR" ] || { say "nothing to stop (no $DEV_DIR)"; return 0; }
  cmd_down_processes
  "$PY" tests/support/controlplane.py down --dir "$DEV_DIR" >&2
  "$PY" tests/support/s3server.py down --dir "$DEV_DIR" >&2 || true
  rm -f "$OPERATOR_KUBECONFIG" "$DEV_DIR/configured"
  say "stopped (logs and claims kept in ${DEV_DIR#"$ROOT"/}; remove the folder to start from scratch)"
}

cmd_status() {
  tools
  local rc=0 pid
  if control_plane_up; then echo "control plane: running"; else echo "control plane: stopped"; rc=1; fi
  if pid=$(kubelet_pid); then echo "local kubelet: running (pid $pid)"; else echo "local kubelet: stopped"; rc=1; fi
  "$PY" tests/support/s3server.py status --dir "$DEV_DIR" || rc=1
  if pid=$(operator_pid); then
    echo "operator:      running (pid $pid, metrics http://127.0.0.1:$(cat "$DEV_DIR/metrics.port")/metrics)"
  else
    echo "operator:      stopped"
    rc=1
  fi
  return "$rc"
}

case "${1:-up}" in
  up) cmd_up ;;
  down) cmd_down ;;
  status) cmd_status ;;
  *) die "usage: $0 up|down|status" ;;
esac
