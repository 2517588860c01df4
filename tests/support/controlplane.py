"""A real Kubernetes control plane on loopback: etcd + kube-apiserver + kube-controller-manager.

The binaries come from `hack/testbin.sh` (built from Kubernetes' own Go modules, cached outside the
repo). There is no scheduler and no kubelet: pods stay Pending unless something writes their status.

Library use (tests, the local kubelet)::

    with ControlPlane() as cp:          # starts, and always stops (also on Ctrl-C / exceptions)
        cp.kubectl("get", "ns")
        cp.kubeconfig                   # admin kubeconfig (client cert in group system:masters)

Command line (`make dev-cluster`)::

    python tests/support/controlplane.py up --dir DIR      # start detached; DIR/kubeconfig, DIR/state.json
    python tests/support/controlplane.py status --dir DIR
    python tests/support/controlplane.py down --dir DIR

Choices, and why:
- TLS everywhere, with a throwaway CA made by the `openssl` CLI (EC P-256 keys: instant to generate).
  The admin credential is a client certificate in group `system:masters`, as on a kubeadm cluster.
- Admission plugins stay at the apiserver defaults (ServiceAccount included) so pods are admitted
  the way a real cluster admits them; the `serviceaccount` controller creates each namespace's
  `default` ServiceAccount, and `root-ca-certificate-publisher` its `kube-root-ca.crt` ConfigMap.
- `--endpoint-reconciler-type=none`: the `kubernetes` Service endpoints would point at 127.0.0.1,
  which Endpoints validation rejects (loopback), and nothing here needs them.
- Each process runs in its own process group; attached control planes also ask the kernel to kill
  their processes when the starting thread dies (PR_SET_PDEATHSIG), so even `kill -9` of the test
  run leaves nothing running. Work dirs of dead runs are swept at the next start.
"""

from __future__ import annotations

import argparse
import atexit
import base64
import contextlib
import ctypes
import json
import os
import secrets
import shutil
import signal
import socket
import ssl
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import TypeVar

REPO_ROOT = Path(__file__).resolve().parents[2]
TESTBIN_SCRIPT = REPO_ROOT / "hack" / "testbin.sh"
BINARIES = ("etcd", "kube-apiserver", "kube-controller-manager", "kubectl")

#: Controllers the tests rely on. Names as `kube-controller-manager --help` lists them (v1.37).
CONTROLLERS = (
    "job-controller",
    "garbage-collector-controller",
    "ttl-after-finished-controller",
    "namespace-controller",
    "serviceaccount-controller",
    "root-ca-certificate-publisher-controller",
    "cronjob-controller",
)
SERVICE_CLUSTER_IP_RANGE = "10.0.0.0/24"
START_TIMEOUT_SECONDS = 60.0
STOP_TIMEOUT_SECONDS = 10.0
PORT_ATTEMPTS = 3
LOG_TAIL_LINES = 40
WORK_DIR_PREFIX = "kslim-cp-"  # attached runs: kslim-cp-<owner pid>-<random>
SHM = Path("/dev/shm")
SHM_MIN_FREE_BYTES = 512 * 1024 * 1024
PR_SET_PDEATHSIG = 1
T = TypeVar("T")


class ControlPlaneError(RuntimeError):
    """The control plane could not start, or a command against it failed."""


class BinariesMissing(ControlPlaneError):
    """The test binaries are not built (or not complete)."""


# ---------------------------------------------------------------------------------------------
# Binaries
# ---------------------------------------------------------------------------------------------


def find_bin_dir() -> Path:
    """The directory with etcd, kube-apiserver, kube-controller-manager and kubectl.

    `KSLIM_TESTBIN_DIR` overrides; otherwise `hack/testbin.sh --print` (the single source of the
    versions and the cache layout) names it.
    """
    override = os.environ.get("KSLIM_TESTBIN_DIR")
    if override:
        bin_dir = Path(override)
    else:
        result = subprocess.run(
            ["bash", str(TESTBIN_SCRIPT), "--print"], capture_output=True, text=True, check=False
        )
        if result.returncode != 0 or not result.stdout.strip():
            raise BinariesMissing("the test control plane binaries are not built: run `make testbin`")
        bin_dir = Path(result.stdout.strip())
    missing = [name for name in BINARIES if not os.access(bin_dir / name, os.X_OK)]
    if missing:
        raise BinariesMissing(f"{', '.join(missing)} missing in {bin_dir}: run `make testbin`")
    return bin_dir


# ---------------------------------------------------------------------------------------------
# PKI (openssl CLI)
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Pki:
    ca_cert: Path
    ca_key: Path
    serving_cert: Path
    serving_key: Path
    admin_cert: Path
    admin_key: Path
    service_account_key: Path
    service_account_public_key: Path


SERVING_SANS = (
    "DNS:localhost",
    "IP:127.0.0.1",
    "DNS:kubernetes",
    "DNS:kubernetes.default",
    "DNS:kubernetes.default.svc",
    "IP:10.0.0.1",
)


def _openssl(*args: str, cwd: Path) -> None:
    result = subprocess.run(["openssl", *args], cwd=cwd, capture_output=True, text=True, check=False)
    if result.returncode != 0:
        raise ControlPlaneError(f"openssl {' '.join(args)} failed: {result.stderr.strip()}")


def _new_key(directory: Path, name: str) -> Path:
    key = directory / f"{name}.key"
    _openssl(
        "genpkey", "-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-256", "-out", key.name, cwd=directory
    )
    key.chmod(0o600)
    return key


def _new_ca(directory: Path) -> tuple[Path, Path]:
    key = _new_key(directory, "ca")
    config = directory / "ca.cnf"
    config.write_text(
        "[req]\ndistinguished_name = dn\nprompt = no\n[dn]\nCN = kslim-test-ca\n"
        "[v3_ca]\nbasicConstraints = critical,CA:TRUE\n"
        "keyUsage = critical,keyCertSign,cRLSign,digitalSignature\nsubjectKeyIdentifier = hash\n"
    )
    _openssl(
        "req", "-x509", "-new", "-key", key.name, "-config", config.name, "-extensions", "v3_ca",
        "-days", "3650", "-out", "ca.crt", cwd=directory,
    )  # fmt: skip
    return directory / "ca.crt", key


def _new_leaf(directory: Path, name: str, subject: str, extensions: Sequence[str]) -> tuple[Path, Path]:
    """A key and a certificate signed by the CA in `directory` (`ca.crt`, `ca.key`)."""
    key = _new_key(directory, name)
    (directory / f"{name}.ext").write_text("\n".join(extensions) + "\n")
    _openssl("req", "-new", "-key", key.name, "-subj", subject, "-out", f"{name}.csr", cwd=directory)
    _openssl(
        "x509", "-req", "-in", f"{name}.csr", "-CA", "ca.crt", "-CAkey", "ca.key",
        "-set_serial", f"0x{secrets.token_hex(8)}", "-days", "365", "-extfile", f"{name}.ext",
        "-out", f"{name}.crt", cwd=directory,
    )  # fmt: skip
    return directory / f"{name}.crt", key


def generate_pki(directory: Path) -> Pki:
    """CA, apiserver serving cert (localhost/127.0.0.1), admin client cert, service-account key."""
    if shutil.which("openssl") is None:
        raise ControlPlaneError("the `openssl` command is needed to make the test certificates")
    directory.mkdir(parents=True, exist_ok=True)
    ca_cert, ca_key = _new_ca(directory)
    serving_cert, serving_key = _new_leaf(
        directory,
        "serving",
        "/CN=kube-apiserver",
        [
            "basicConstraints = critical,CA:FALSE",
            "keyUsage = critical,digitalSignature,keyEncipherment",
            "extendedKeyUsage = serverAuth",
            "subjectAltName = " + ",".join(SERVING_SANS),
        ],
    )
    admin_cert, admin_key = _new_leaf(
        directory,
        "admin",
        "/O=system:masters/CN=kslim-admin",
        [
            "basicConstraints = critical,CA:FALSE",
            "keyUsage = critical,digitalSignature,keyEncipherment",
            "extendedKeyUsage = clientAuth",
        ],
    )
    sa_key, sa_pub = _new_key(directory, "sa"), directory / "sa.pub"
    _openssl("pkey", "-in", sa_key.name, "-pubout", "-out", sa_pub.name, cwd=directory)
    return Pki(ca_cert, ca_key, serving_cert, serving_key, admin_cert, admin_key, sa_key, sa_pub)


# ---------------------------------------------------------------------------------------------
# Small helpers: ports, kubeconfig, logs, waiting
# ---------------------------------------------------------------------------------------------


def free_ports(count: int) -> list[int]:
    """`count` distinct free loopback ports (all held open together while choosing)."""
    sockets = [socket.socket(socket.AF_INET, socket.SOCK_STREAM) for _ in range(count)]
    try:
        for sock in sockets:
            sock.bind(("127.0.0.1", 0))
        return [sock.getsockname()[1] for sock in sockets]
    finally:
        for sock in sockets:
            sock.close()


def _b64(path: Path) -> str:
    return base64.b64encode(path.read_bytes()).decode()


def write_kubeconfig(path: Path, server: str, pki: Pki) -> None:
    """An admin kubeconfig with the credentials embedded (so it can be copied elsewhere)."""
    config = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [
            {
                "name": "kslim-test",
                "cluster": {"server": server, "certificate-authority-data": _b64(pki.ca_cert)},
            }
        ],
        "users": [
            {
                "name": "kslim-admin",
                "user": {
                    "client-certificate-data": _b64(pki.admin_cert),
                    "client-key-data": _b64(pki.admin_key),
                },
            }
        ],
        "contexts": [{"name": "kslim-test", "context": {"cluster": "kslim-test", "user": "kslim-admin"}}],
        "current-context": "kslim-test",
    }
    path.write_text(json.dumps(config, indent=2) + "\n")  # JSON is YAML: kubectl and clients read it
    path.chmod(0o600)


def log_tail(path: Path, lines: int = LOG_TAIL_LINES) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return "(no log)"


def _http_ok(url: str, context: ssl.SSLContext | None) -> bool:
    try:
        with urllib.request.urlopen(url, context=context, timeout=2) as response:
            return bool(response.status == 200)
    except (OSError, ValueError):  # URLError/HTTPError/ssl errors are OSErrors
        return False


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _pid_runs(pid: int, binary: str) -> bool:
    """Whether `pid` is alive and still runs `binary` (guards against pid reuse)."""
    try:
        argv0 = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")[0].decode()
    except OSError:
        return False
    return Path(argv0).name == binary


def _kill_group(pid: int, sig: signal.Signals) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pid, sig)


def _stop_group(process: subprocess.Popen[bytes]) -> None:
    """SIGTERM the process group of `process`, SIGKILL it if it is not gone in time."""
    if process.poll() is None:
        _kill_group(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout=STOP_TIMEOUT_SECONDS)
        except subprocess.TimeoutExpired:
            _kill_group(process.pid, signal.SIGKILL)
            process.wait()
    _kill_group(process.pid, signal.SIGKILL)  # anything left in the group (none expected)


def _wait_pid_gone(pid: int, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not _pid_alive(pid):
            return True
        with contextlib.suppress(ChildProcessError):
            os.waitpid(pid, os.WNOHANG)
        time.sleep(0.05)
    return not _pid_alive(pid)


def _die_with_parent_hook() -> Callable[[], None]:
    """A preexec_fn: the child gets SIGKILL when the thread that started it dies (Linux)."""
    parent = os.getpid()
    prctl = ctypes.CDLL(None, use_errno=True).prctl if sys.platform.startswith("linux") else None

    def hook() -> None:
        if prctl is not None:
            prctl(PR_SET_PDEATHSIG, signal.SIGKILL)
        if os.getppid() != parent:  # the parent died before prctl took effect
            os.kill(os.getpid(), signal.SIGKILL)

    return hook


def sweep_stale_work_dirs() -> None:
    """Remove work dirs of attached control planes whose owning process is gone."""
    for base in {SHM, Path(tempfile.gettempdir())}:
        with contextlib.suppress(OSError):
            for entry in base.glob(f"{WORK_DIR_PREFIX}*"):
                owner = entry.name[len(WORK_DIR_PREFIX) :].split("-", 1)[0]
                if owner.isdigit() and not _pid_alive(int(owner)):
                    shutil.rmtree(entry, ignore_errors=True)


def _scratch_base() -> Path:
    """/dev/shm when it exists and has room (etcd is fastest on tmpfs), else the temp dir."""
    with contextlib.suppress(OSError):
        if SHM.is_dir() and os.access(SHM, os.W_OK) and shutil.disk_usage(SHM).free > SHM_MIN_FREE_BYTES:
            return SHM
    return Path(tempfile.gettempdir())


# ---------------------------------------------------------------------------------------------
# The control plane
# ---------------------------------------------------------------------------------------------


@dataclass
class Component:
    name: str
    args: list[str]
    log: Path
    process: subprocess.Popen[bytes] | None = None

    @property
    def pid(self) -> int | None:
        return self.process.pid if self.process else None


@dataclass
class Ports:
    etcd_client: int
    etcd_peer: int
    apiserver: int
    controller_manager: int

    @classmethod
    def pick(cls) -> Ports:
        return cls(*free_ports(4))


@dataclass(eq=False)
class ControlPlane:
    """etcd + kube-apiserver + kube-controller-manager on free loopback ports.

    Call `start()` from a thread that lives as long as the control plane should (normally the main
    thread): attached processes are killed by the kernel when that thread ends.

    work_dir: where pki, logs and the kubeconfig go. Default: a fresh temp dir (on /dev/shm when
        possible) removed by `stop()`. A given dir is kept; `stop()` removes only what it made there.
    detached: the processes outlive this Python process (for `up`/`down`); no atexit, no PDEATHSIG.
    controllers: kube-controller-manager's `--controllers`.
    """

    work_dir: Path | None = None
    detached: bool = False
    controllers: Sequence[str] = CONTROLLERS
    bin_dir: Path = field(default_factory=find_bin_dir)
    timings: dict[str, float] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self._owns_work_dir = self.work_dir is None
        self._components: list[Component] = []
        self._etcd_data: Path | None = None
        self.pki: Pki | None = None
        self.ports: Ports | None = None

    # ---- public API

    @property
    def kubeconfig(self) -> Path:
        return self._dir / "kubeconfig"

    @property
    def server(self) -> str:
        assert self.ports, "not started"
        return f"https://127.0.0.1:{self.ports.apiserver}"

    @property
    def logs_dir(self) -> Path:
        return self._dir / "logs"

    @property
    def pids(self) -> dict[str, int]:
        return {c.name: c.pid for c in self._components if c.pid is not None}

    def start(self) -> ControlPlane:
        """Start everything and wait until it serves; on any failure nothing is left running."""
        started = time.monotonic()
        if not self.detached:
            atexit.register(self.stop)
        try:
            self._prepare_dirs()
            self.pki = self._timed("pki", lambda: generate_pki(self._dir / "pki"))
            self._start_with_free_ports()
        except BaseException:
            self.stop()
            raise
        self.timings["total"] = time.monotonic() - started
        return self

    def stop(self) -> None:
        """Terminate every process group (TERM, then KILL), then remove what start() created."""
        with contextlib.suppress(Exception):
            atexit.unregister(self.stop)
        self._stop_processes()
        self._remove_files()

    def kubectl(
        self, *args: str, input: str | None = None, check: bool = True, timeout: float = 60.0
    ) -> subprocess.CompletedProcess[str]:
        """Run the built kubectl against this control plane; raises ControlPlaneError if check fails."""
        command = [
            str(self.bin_dir / "kubectl"),
            f"--kubeconfig={self.kubeconfig}",
            f"--cache-dir={self._dir / 'kubectl-cache'}",
            *args,
        ]
        result = subprocess.run(
            command, input=input, capture_output=True, text=True, timeout=timeout, check=False
        )
        if check and result.returncode != 0:
            what = f"kubectl {' '.join(args)} failed ({result.returncode})"
            raise ControlPlaneError(f"{what}: {result.stderr.strip()}")
        return result

    def summary(self) -> str:
        parts = ", ".join(f"{k} {v:.1f}s" for k, v in self.timings.items() if k != "total")
        return f"control plane {self.server} started in {self.timings.get('total', 0):.1f}s ({parts})"

    def __enter__(self) -> ControlPlane:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()

    # ---- directories

    @property
    def _dir(self) -> Path:
        assert self.work_dir is not None, "not started"
        return self.work_dir

    def _prepare_dirs(self) -> None:
        sweep_stale_work_dirs()
        if self.work_dir is None:
            prefix = f"{WORK_DIR_PREFIX}{os.getpid()}-"
            self.work_dir = Path(tempfile.mkdtemp(prefix=prefix, dir=_scratch_base()))
            self._etcd_data = self.work_dir / "etcd"
        else:
            self.work_dir.mkdir(parents=True, exist_ok=True)
            self._etcd_data = Path(tempfile.mkdtemp(prefix="kslim-dev-etcd-", dir=_scratch_base()))
        self.logs_dir.mkdir(exist_ok=True)

    def _remove_files(self) -> None:
        if self.work_dir is None:
            return
        if self._owns_work_dir:
            shutil.rmtree(self.work_dir, ignore_errors=True)
            self.work_dir = None
            return
        for path in (self._etcd_data, self._dir / "pki", self._dir / "kubectl-cache"):
            if path is not None:
                shutil.rmtree(path, ignore_errors=True)
        self.kubeconfig.unlink(missing_ok=True)

    # ---- starting

    def _timed(self, name: str, step: Callable[[], T]) -> T:
        t0 = time.monotonic()
        result = step()
        self.timings[name] = time.monotonic() - t0
        return result

    def _start_with_free_ports(self) -> None:
        """Free ports can be taken by someone else before we bind them: retry with new ones."""
        for attempt in range(1, PORT_ATTEMPTS + 1):
            self.ports = Ports.pick()
            try:
                self._start_components()
                return
            except ControlPlaneError as error:
                if attempt == PORT_ATTEMPTS or "address already in use" not in str(error):
                    raise
                self._stop_processes()
                if self._etcd_data is not None:
                    shutil.rmtree(self._etcd_data, ignore_errors=True)

    def _start_components(self) -> None:
        assert self.pki is not None and self.ports is not None
        write_kubeconfig(self.kubeconfig, self.server, self.pki)
        self._timed("etcd", self._start_etcd)
        self._timed("kube-apiserver", self._start_apiserver)
        self._timed("kube-controller-manager", self._start_controller_manager)

    def _start_etcd(self) -> None:
        assert self.ports is not None and self._etcd_data is not None
        client = f"http://127.0.0.1:{self.ports.etcd_client}"
        peer = f"http://127.0.0.1:{self.ports.etcd_peer}"
        component = self._launch(
            "etcd",
            [
                "--name=kslim",
                f"--data-dir={self._etcd_data}",
                f"--listen-client-urls={client}",
                f"--advertise-client-urls={client}",
                f"--listen-peer-urls={peer}",
                f"--initial-advertise-peer-urls={peer}",
                f"--initial-cluster=kslim={peer}",
                "--unsafe-no-fsync",
                "--log-level=warn",
            ],
        )
        self._wait_serving(component, f"{client}/health", context=None)

    def _start_apiserver(self) -> None:
        assert self.ports is not None and self.pki is not None
        pki, port = self.pki, self.ports.apiserver
        component = self._launch(
            "kube-apiserver",
            [
                f"--etcd-servers=http://127.0.0.1:{self.ports.etcd_client}",
                "--bind-address=127.0.0.1",
                "--advertise-address=127.0.0.1",
                f"--secure-port={port}",
                f"--tls-cert-file={pki.serving_cert}",
                f"--tls-private-key-file={pki.serving_key}",
                f"--client-ca-file={pki.ca_cert}",
                "--authorization-mode=RBAC",
                f"--service-account-issuer=https://127.0.0.1:{port}",
                f"--service-account-key-file={pki.service_account_public_key}",
                f"--service-account-signing-key-file={pki.service_account_key}",
                f"--service-cluster-ip-range={SERVICE_CLUSTER_IP_RANGE}",
                "--endpoint-reconciler-type=none",
                "--allow-privileged=true",
                "--profiling=false",
            ],
        )
        self._wait_serving(component, f"{self.server}/readyz", context=self._admin_context())

    def _start_controller_manager(self) -> None:
        assert self.ports is not None and self.pki is not None
        pki, port = self.pki, self.ports.controller_manager
        component = self._launch(
            "kube-controller-manager",
            [
                f"--kubeconfig={self.kubeconfig}",
                f"--authentication-kubeconfig={self.kubeconfig}",
                f"--authorization-kubeconfig={self.kubeconfig}",
                "--leader-elect=false",
                "--bind-address=127.0.0.1",
                f"--secure-port={port}",
                f"--tls-cert-file={pki.serving_cert}",
                f"--tls-private-key-file={pki.serving_key}",
                f"--service-account-private-key-file={pki.service_account_key}",
                f"--root-ca-file={pki.ca_cert}",
                f"--controllers={','.join(self.controllers)}",
                "--profiling=false",
            ],
        )
        self._wait_serving(component, f"https://127.0.0.1:{port}/healthz", context=self._ca_context())

    def _ca_context(self) -> ssl.SSLContext:
        assert self.pki is not None
        return ssl.create_default_context(cafile=str(self.pki.ca_cert))

    def _admin_context(self) -> ssl.SSLContext:
        assert self.pki is not None
        context = self._ca_context()
        context.load_cert_chain(str(self.pki.admin_cert), str(self.pki.admin_key))
        return context

    def _launch(self, name: str, args: list[str]) -> Component:
        component = Component(name, [str(self.bin_dir / name), *args], self.logs_dir / f"{name}.log")
        with component.log.open("wb") as log:
            component.process = subprocess.Popen(
                component.args,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                cwd=self._dir,
                start_new_session=True,  # own process group: stop() signals the whole group
                preexec_fn=None if self.detached else _die_with_parent_hook(),
            )
        self._components.append(component)
        return component

    def _wait_serving(self, component: Component, url: str, context: ssl.SSLContext | None) -> None:
        """Poll `url` until 200; raise with the log tail if the process exits or time runs out."""
        assert component.process is not None
        deadline = time.monotonic() + START_TIMEOUT_SECONDS
        while time.monotonic() < deadline:
            if _http_ok(url, context):
                return
            code = component.process.poll()
            if code is not None:
                raise ControlPlaneError(self._failure(component, f"exited with code {code}"))
            time.sleep(0.1)
        what = f"not ready at {url} after {START_TIMEOUT_SECONDS:.0f}s"
        raise ControlPlaneError(self._failure(component, what))

    @staticmethod
    def _failure(component: Component, what: str) -> str:
        return (
            f"{component.name} {what}.\nCommand: {' '.join(component.args)}\n"
            f"Last lines of {component.log}:\n{log_tail(component.log)}"
        )

    # ---- stopping

    def _stop_processes(self) -> None:
        """Newest first (etcd last: an apiserver without etcd takes long to shut down)."""
        for component in reversed(self._components):
            if component.process is not None:
                _stop_group(component.process)
        self._components.clear()

    # ---- detached mode (`up` / `down`)

    def write_state(self) -> Path:
        """Record pids and paths in work_dir/state.json, for `down` and `status`."""
        state = {
            "pids": self.pids,
            "server": self.server,
            "kubeconfig": str(self.kubeconfig),
            "etcd_data_dir": str(self._etcd_data),
            "logs_dir": str(self.logs_dir),
        }
        path = self._dir / "state.json"
        path.write_text(json.dumps(state, indent=2) + "\n")
        return path


# ---------------------------------------------------------------------------------------------
# Detached control planes, by state file
# ---------------------------------------------------------------------------------------------


def read_state(directory: Path) -> dict[str, object] | None:
    path = directory / "state.json"
    if not path.exists():
        return None
    data: dict[str, object] = json.loads(path.read_text())
    return data


def running_pids(state: dict[str, object]) -> dict[str, int]:
    """The recorded processes that still run their binary."""
    pids = state.get("pids", {})
    assert isinstance(pids, dict)
    return {name: int(pid) for name, pid in pids.items() if _pid_runs(int(pid), name)}


def stop_detached(directory: Path) -> list[str]:
    """Stop the control plane recorded in `directory`; returns the names of the stopped processes."""
    state = read_state(directory)
    if state is None:
        return []
    alive = running_pids(state)
    for pid in reversed(alive.values()):  # recorded in start order; etcd last
        _kill_group(pid, signal.SIGTERM)
        if not _wait_pid_gone(pid, STOP_TIMEOUT_SECONDS):
            _kill_group(pid, signal.SIGKILL)
    etcd_data = state.get("etcd_data_dir")
    if isinstance(etcd_data, str) and etcd_data:
        shutil.rmtree(etcd_data, ignore_errors=True)
    for name in ("pki", "kubectl-cache"):
        shutil.rmtree(directory / name, ignore_errors=True)
    for name in ("kubeconfig", "state.json"):
        (directory / name).unlink(missing_ok=True)
    return sorted(alive)


def _cmd_up(directory: Path) -> int:
    state = read_state(directory)
    if state is not None:
        alive = running_pids(state)
        if alive:
            print(f"already running in {directory} (pids {alive}); run `down` first", file=sys.stderr)
            return 1
        stop_detached(directory)  # stale state of a dead control plane
    control_plane = ControlPlane(work_dir=directory, detached=True)
    try:
        control_plane.start()
        control_plane.write_state()
    except BaseException:
        control_plane.stop()
        raise
    print(control_plane.summary())
    print(f"export KUBECONFIG={control_plane.kubeconfig}")
    return 0


def _cmd_down(directory: Path) -> int:
    stopped = stop_detached(directory)
    print(f"stopped: {', '.join(stopped) if stopped else 'nothing was running'}")
    return 0


def _cmd_status(directory: Path) -> int:
    state = read_state(directory)
    if state is None:
        print("not running")
        return 1
    alive = running_pids(state)
    recorded = state.get("pids", {})
    print(json.dumps({"server": state.get("server"), "kubeconfig": state.get("kubeconfig"), "alive": alive}))
    return 0 if isinstance(recorded, dict) and len(alive) == len(recorded) else 1


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Run the kslim test control plane detached.")
    parser.add_argument("command", choices=("up", "down", "status"))
    parser.add_argument("--dir", type=Path, required=True, help="state dir: kubeconfig, state.json, logs/")
    options = parser.parse_args(argv)
    directory = options.dir.resolve()
    commands = {"up": _cmd_up, "down": _cmd_down, "status": _cmd_status}
    try:
        return commands[options.command](directory)
    except ControlPlaneError as error:
        print(f"error: {error}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
