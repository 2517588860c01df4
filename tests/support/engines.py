"""Workload engines on the test control plane: Kubeflow training-operator and Kueue, as local processes.

`hack/engines.sh` builds both from their Go modules (training-operator v1.8.1, Kueue v0.17.0) and
copies their CRDs and webhook manifests beside the binaries. This module installs those manifests on
a running `ControlPlane`, starts the binary with the control plane's admin kubeconfig on free loopback
ports, waits until it is ready, and stops it again. No pytest in here.

Library use::

    with TrainingOperator(control_plane, work_dir) as operator:   # PaddleJob controller + webhook
        ...
    with Kueue(control_plane, work_dir) as kueue:                 # batch/job + kubeflow.org/paddlejob
        kueue.manage("team-a")                                    # Kueue handles jobs in team-a
    Kueue(control_plane, work_dir, config={"waitForPodsReady": {"timeout": "5m"}}).start()

What is real, and what is not:

- Real: the engines' own binaries, CRDs and webhook configurations from the same module versions;
  their controllers (training-operator creates the pods and Services of a PaddleJob and derives its
  conditions from pod phases; Kueue creates Workloads, reserves quota, admits and suspends), their
  admission webhooks called by kube-apiserver over TLS (training-operator's PaddleJob validation;
  Kueue's mutating/validating webhooks for its own kinds, batch Jobs and PaddleJobs, and its CRD
  conversion webhook), and their certificate rotators (open-policy-agent/cert-controller), which
  check and keep the certificate Secret we give them and inject its CA into the webhook
  configurations, as in a real deployment.
- Webhooks on loopback: a Service cannot route to a local process here (no kube-proxy, and
  Endpoints may not point at 127.0.0.1), so every `clientConfig.service` of the shipped manifests
  becomes `clientConfig.url: https://127.0.0.1:<port><path>`. The rotators would make a serving
  certificate for `<service>.<namespace>.svc` only, which that URL does not match, so each start
  makes a throwaway CA (with the DNS name the rotator checks a CA for) and a serving certificate for
  both `<service>.<namespace>.svc` and IP 127.0.0.1, and puts them in the Secret the rotator reads
  (`kubeflow/training-operator-webhook-cert`, `kueue-system/kueue-webhook-server-cert`) and in the
  process's own cert dir, as the kubelet would mount that Secret. The rotator finds them valid and
  keeps them ("no cert refresh needed").
- Kueue runs with its default internal cert management (the rotator above). With it disabled,
  v0.17.0 reads its metrics certificate from the fixed path /etc/kueue/metrics/certs and exits
  without one; enabled, nothing outside the work dir is written. Kueue serves webhooks for every
  framework (no-op ones for disabled frameworks); we register only those of its own kinds and of
  the enabled frameworks, so pods, Deployments etc. never go through it. Test isolation: Kueue
  manages only namespaces labelled `kslim.dev/kueue-managed=true` (`Kueue.manage(namespace)`; its
  `managedJobsNamespaceSelector`, which v0.17's reconcilers respect, and the namespaceSelector of the
  framework webhooks), so the session's other tests never meet it. Its visibility API server (an
  aggregated API on a fixed port) is off (feature gate VisibilityOnDemand=false).
- training-operator v1.8.1's rotator insists that /tmp/k8s-webhook-server/serving-certs/tls.crt
  exists (a fixed path; it only checks that the file is there). Its webhook server reads
  $TMPDIR/k8s-webhook-server/serving-certs, and TMPDIR is the engine's own work dir, so each run
  serves its own certificate; the /tmp file is only created (with that run's certificate) when it
  is missing, never changed or removed.
- Not real: both engines use the admin client certificate (system:masters), not their RBAC;
  leader election and metrics serving are off; there is no kubelet or scheduler, so tests play the
  kubelet (`set_pod_phase`) and pod IPs, Service DNS and GPUs do not exist (quota counts the
  requests in the pod templates; nothing checks a node has them).
"""

from __future__ import annotations

import base64
import copy
import json
import os
import secrets
import shutil
import subprocess
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Any, ClassVar

import yaml
from kubernetes import client

from .controlplane import (
    ControlPlane,
    _die_with_parent_hook,
    _http_ok,
    _openssl,
    _stop_group,
    free_ports,
    log_tail,
)
from .kube import apply_crds, wait_for

REPO_ROOT = Path(__file__).resolve().parents[2]
BUILD_SCRIPT = REPO_ROOT / "hack" / "engines.sh"
START_TIMEOUT_SECONDS = 90.0
PORT_ATTEMPTS = 3
FIELD_MANAGER = "kslim-tests"
QUEUE_LABEL = "kueue.x-k8s.io/queue-name"
MANAGED_NAMESPACE_LABEL = "kslim.dev/kueue-managed"  # value "true": Kueue manages its jobs
PADDLE_CRD = "training-operator/crds/kubeflow.org_paddlejobs.yaml"


class EngineError(RuntimeError):
    """An engine could not be installed or started."""


class EnginesMissing(EngineError):
    """The engine binaries are not built."""


def find_engines_dir() -> Path:
    """The directory of `hack/engines.sh` (binaries + manifests/). `KSLIM_ENGINES_DIR` overrides."""
    override = os.environ.get("KSLIM_ENGINES_DIR")
    if override:
        return Path(override)
    result = subprocess.run(
        ["bash", str(BUILD_SCRIPT), "--print"], capture_output=True, text=True, check=False
    )
    if result.returncode != 0 or not result.stdout.strip():
        raise EnginesMissing(
            "the workload engines (training-operator, Kueue) are not built: run `make engines`"
        )
    return Path(result.stdout.strip())


# ---------------------------------------------------------------------------------------------
# Webhook certificates (openssl CLI, like the control plane's)
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class WebhookPki:
    ca_cert: Path
    ca_key: Path
    cert: Path
    key: Path

    @property
    def ca_bundle(self) -> str:
        return base64.b64encode(self.ca_cert.read_bytes()).decode()

    def secret_data(self) -> dict[str, str]:
        """The Secret layout cert-controller's rotator reads and writes."""
        files = {"ca.crt": self.ca_cert, "ca.key": self.ca_key, "tls.crt": self.cert, "tls.key": self.key}
        return {name: base64.b64encode(path.read_bytes()).decode() for name, path in files.items()}


def make_webhook_pki(directory: Path, ca_name: str, ca_organization: str, dns_name: str) -> WebhookPki:
    """A CA and a serving certificate that cert-controller's rotator accepts as its own.

    The rotator checks the CA against the DNS name `ca_name` and the serving certificate against
    `dns_name` (server auth, valid beyond its 90-day look-ahead); the apiserver checks the serving
    certificate against IP 127.0.0.1. The CA key is PKCS#1 RSA, the format the rotator parses when
    it re-signs a serving certificate.
    """
    directory.mkdir(parents=True, exist_ok=True)
    _openssl("genrsa", "-traditional", "-out", "ca.key", "2048", cwd=directory)
    (directory / "ca.cnf").write_text(
        f"[req]\ndistinguished_name = dn\nprompt = no\n[dn]\nO = {ca_organization}\nCN = {ca_name}\n"
        "[v3_ca]\nbasicConstraints = critical,CA:TRUE\n"
        "keyUsage = critical,keyCertSign,digitalSignature,keyEncipherment\n"
        f"subjectKeyIdentifier = hash\nsubjectAltName = DNS:{ca_name}\n"
    )
    _openssl(
        "req", "-x509", "-new", "-key", "ca.key", "-config", "ca.cnf", "-extensions", "v3_ca",
        "-days", "3650", "-out", "ca.crt", cwd=directory,
    )  # fmt: skip
    _openssl(
        "genpkey", "-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-256", "-out", "tls.key", cwd=directory
    )
    (directory / "tls.ext").write_text(
        "basicConstraints = critical,CA:FALSE\nkeyUsage = critical,digitalSignature,keyEncipherment\n"
        f"extendedKeyUsage = serverAuth\nsubjectAltName = DNS:{dns_name},IP:127.0.0.1\n"
    )
    _openssl("req", "-new", "-key", "tls.key", "-subj", f"/CN={dns_name}", "-out", "tls.csr", cwd=directory)
    _openssl(
        "x509", "-req", "-in", "tls.csr", "-CA", "ca.crt", "-CAkey", "ca.key",
        "-set_serial", f"0x{secrets.token_hex(8)}", "-days", "3650", "-extfile", "tls.ext",
        "-out", "tls.crt", cwd=directory,
    )  # fmt: skip
    for name in ("ca.key", "tls.key"):
        (directory / name).chmod(0o600)
    return WebhookPki(
        directory / "ca.crt", directory / "ca.key", directory / "tls.crt", directory / "tls.key"
    )


def install_serving_cert(pki: WebhookPki, cert_dir: Path) -> None:
    """Put tls.crt/tls.key where the webhook server reads them (what a mounted Secret would be)."""
    cert_dir.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(pki.cert, cert_dir / "tls.crt")
    shutil.copyfile(pki.key, cert_dir / "tls.key")
    (cert_dir / "tls.key").chmod(0o600)


# ---------------------------------------------------------------------------------------------
# Manifests
# ---------------------------------------------------------------------------------------------


YAML_LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)  # libyaml: 10x faster on Kueue's 1.6 MB of CRDs


def load_yaml_documents(path: Path) -> list[dict[str, Any]]:
    return [doc for doc in yaml.load_all(path.read_text(), Loader=YAML_LOADER) if doc]


def url_client_config(client_config: Mapping[str, Any], port: int, ca_bundle: str) -> dict[str, Any]:
    """A webhook `clientConfig` with its Service replaced by https://127.0.0.1:<port><path>."""
    path = client_config.get("service", {}).get("path", "/")
    return {"url": f"https://127.0.0.1:{port}{path}", "caBundle": ca_bundle}


def webhook_resources(webhook: Mapping[str, Any]) -> set[tuple[str, str]]:
    """The (group, resource) pairs a webhook's rules match (subresources dropped)."""
    return {
        (group, resource.split("/")[0])
        for rule in webhook.get("rules", [])
        for group in rule.get("apiGroups", [])
        for resource in rule.get("resources", [])
    }


#: Kueue framework names whose resource is not simply `<group>/<kind>` → (group, <kind>s).
KUEUE_FRAMEWORK_RESOURCES = {
    "pod": ("", "pods"),
    "deployment": ("apps", "deployments"),
    "statefulset": ("apps", "statefulsets"),
}


def kueue_framework_resource(framework: str) -> tuple[str, str]:
    """(group, plural resource) of a Kueue `integrations.frameworks` entry, e.g. batch/job → (batch, jobs)."""
    if framework in KUEUE_FRAMEWORK_RESOURCES:
        return KUEUE_FRAMEWORK_RESOURCES[framework]
    group, _, kind = framework.rpartition("/")
    return group, f"{kind.lower()}s"


def deep_merge(base: Mapping[str, Any], override: Mapping[str, Any]) -> dict[str, Any]:
    """`override` merged into a copy of `base`: dicts recursively, anything else replaced."""
    merged = copy.deepcopy(dict(base))
    for key, value in override.items():
        if isinstance(value, Mapping) and isinstance(merged.get(key), Mapping):
            merged[key] = deep_merge(merged[key], value)
        else:
            merged[key] = copy.deepcopy(value)
    return merged


# ---------------------------------------------------------------------------------------------
# The engines
# ---------------------------------------------------------------------------------------------


class Engine:
    """One engine process against a control plane: install, start, wait ready, stop.

    work_dir: certificates, config, the process's TMPDIR and its log (`<name>.log`); default
    `engine-<name>` in the control plane's work dir, removed by `stop()` (a given one is kept, log
    included: the pytest fixtures give the session's tmp folder).
    """

    name: ClassVar[str]
    namespace: ClassVar[str]

    def __init__(self, control_plane: ControlPlane, work_dir: Path | None = None) -> None:
        self.control_plane = control_plane
        self.engines_dir = find_engines_dir()
        self.binary = self.engines_dir / self.name
        if not os.access(self.binary, os.X_OK):
            raise EnginesMissing(f"{self.binary} is missing: run `make engines`")
        self._own_dir = work_dir is None
        self.work_dir = (
            Path(work_dir) if work_dir else Path(control_plane.logs_dir).parent / f"engine-{self.name}"
        )
        self.log = self.work_dir / f"{self.name}.log"
        self.process: subprocess.Popen[bytes] | None = None
        self.probe_port = 0
        self.webhook_port = 0
        self.pki: WebhookPki | None = None
        self.timings: dict[str, float] = {}
        self._registered: list[tuple[str, str]] = []  # (kind, name) registered by us

    # ---- public API

    @property
    def manifests(self) -> Path:
        return self.engines_dir / "manifests"

    def start(self) -> Engine:
        """Install what the engine needs, start it, wait until ready; on failure nothing runs."""
        t0 = time.monotonic()
        try:
            self.work_dir.mkdir(parents=True, exist_ok=True)
            self.install()
            self.timings["install"] = time.monotonic() - t0
            for attempt in range(1, PORT_ATTEMPTS + 1):
                self.probe_port, self.webhook_port = free_ports(2)
                try:
                    self._start_once()
                    break
                except EngineError as error:
                    if attempt == PORT_ATTEMPTS or "address already in use" not in str(error):
                        raise
                    self._stop_process()
        except BaseException:
            self.stop()
            raise
        self.timings["total"] = time.monotonic() - t0
        return self

    def stop(self) -> None:
        """Remove the webhook configurations that point at this process, then stop it."""
        for kind, name in reversed(self._registered):
            self.control_plane.kubectl(
                "delete", kind, name, "--ignore-not-found", "--wait=false", check=False
            )
        self._registered.clear()
        self._stop_process()
        if self._own_dir:
            shutil.rmtree(self.work_dir, ignore_errors=True)

    @property
    def started_in(self) -> float:
        return self.timings.get("total", 0.0)

    def summary(self) -> str:
        parts = ", ".join(f"{k} {v:.1f}s" for k, v in self.timings.items() if k != "total")
        return f"{self.name} started in {self.started_in:.1f}s ({parts}); log {self.log}"

    def log_tail(self, lines: int = 60) -> str:
        return log_tail(self.log, lines)

    def __enter__(self) -> Engine:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()

    # ---- for subclasses

    def install(self) -> None:
        """CRDs, namespace, certificate Secret (before the process starts)."""
        raise NotImplementedError

    def command(self) -> list[str]:
        raise NotImplementedError

    def environment(self) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith("KUBERNETES_")}
        tmp = self.work_dir / "tmp"
        tmp.mkdir(exist_ok=True)
        env.update(KUBECONFIG=str(self.control_plane.kubeconfig), TMPDIR=str(tmp))
        return env

    def before_launch(self) -> None:
        """Per-port setup: config files, webhook configurations."""

    def check_webhooks(self) -> None:
        """Raise unless the apiserver can call the engine's webhooks (run until it does not raise)."""

    # ---- helpers

    def apply(self, *objects: Mapping[str, Any]) -> None:
        """Server-side apply `objects` (one kubectl call)."""
        items = {"apiVersion": "v1", "kind": "List", "items": list(objects)}
        self.control_plane.kubectl(
            "apply", "--server-side", "--force-conflicts", f"--field-manager={FIELD_MANAGER}", "-f", "-",
            input=json.dumps(items),
        )  # fmt: skip

    def register_webhook_configuration(self, configuration: Mapping[str, Any]) -> None:
        self.apply(configuration)
        self._registered.append(
            (
                f"{configuration['kind'].lower()}.admissionregistration.k8s.io",
                configuration["metadata"]["name"],
            )
        )

    def ensure_namespace(self, name: str) -> None:
        self.apply({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name}})

    def cert_secret(self, name: str, pki: WebhookPki) -> dict[str, Any]:
        return {
            "apiVersion": "v1",
            "kind": "Secret",
            "metadata": {"name": name, "namespace": self.namespace},
            "type": "Opaque",
            "data": pki.secret_data(),
        }

    def dry_run_create(self, obj: Mapping[str, Any]) -> dict[str, Any]:
        """Create `obj` with dryRun=All (admission webhooks run, nothing is stored); the result."""
        result = self.control_plane.kubectl(
            "create", "--dry-run=server", "-o", "json", "-f", "-", input=json.dumps(obj), check=False
        )
        if result.returncode != 0:
            raise EngineError(result.stderr.strip())
        created: dict[str, Any] = json.loads(result.stdout)
        return created

    def _start_once(self) -> None:
        t0 = time.monotonic()
        self.before_launch()
        self.timings["manifests"] = time.monotonic() - t0
        with self.log.open("ab") as log:
            log.write(f"==== {' '.join(self.command())}\n".encode())
            log.flush()
            self.process = subprocess.Popen(
                self.command(),
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                cwd=self.work_dir,
                env=self.environment(),
                start_new_session=True,  # own process group: stopped as a whole, never by name
                preexec_fn=_die_with_parent_hook(),
            )
        t0 = time.monotonic()
        self._wait_ready()
        self.timings["ready"] = time.monotonic() - t0

    def _wait_ready(self) -> None:
        """readyz on the probe port, then a dry-run request through the apiserver to the webhooks."""
        assert self.process is not None
        deadline = time.monotonic() + START_TIMEOUT_SECONDS
        url = f"http://127.0.0.1:{self.probe_port}/readyz"
        last_error = ""
        while time.monotonic() < deadline:
            code = self.process.poll()
            if code is not None:
                raise EngineError(self._failure(f"exited with code {code}"))
            if _http_ok(url, None):
                try:
                    self.check_webhooks()
                    return
                except EngineError as error:
                    last_error = str(error)
            time.sleep(0.2)
        what = (
            f"not ready after {START_TIMEOUT_SECONDS:.0f}s ({url}; last webhook check: {last_error or '-'})"
        )
        raise EngineError(self._failure(what))

    def _failure(self, what: str) -> str:
        tail = self.log_tail(40)
        in_use = "address already in use" if "address already in use" in tail else ""
        return (
            f"{self.name} {what}. {in_use}\nCommand: {' '.join(self.command())}\n"
            f"Last lines of {self.log}:\n{tail}"
        )

    def _stop_process(self) -> None:
        if self.process is not None:
            _stop_group(self.process)
            self.process = None


class TrainingOperator(Engine):
    """Kubeflow training-operator v1 with only the PaddleJob controller (`--enable-scheme=paddlejob`),
    watching all namespaces, its PaddleJob validating webhook registered on loopback."""

    name = "training-operator"
    namespace = "kubeflow"  # MY_POD_NAMESPACE: where its rotator finds the certificate Secret
    SERVICE = "training-operator"  # --webhook-service-name (default)
    SECRET = "training-operator-webhook-cert"  # --webhook-secret-name (default)
    WEBHOOK_CONFIGURATION = "validator.training-operator.kubeflow.org"  # the name its rotator injects into
    CA_NAME, CA_ORGANIZATION = "training-operator-ca", "training-operator"
    #: The fixed path v1.8.1's rotator waits for (pkg/cert/cert.go); only its existence is checked.
    ROTATOR_CERT_FILE = Path("/tmp/k8s-webhook-server/serving-certs/tls.crt")
    SCHEMES: ClassVar[tuple[str, ...]] = ("paddlejob",)

    def install(self) -> None:
        crd_dir = self.work_dir / "crds"
        crd_dir.mkdir(exist_ok=True)
        shutil.copyfile(self.manifests / PADDLE_CRD, crd_dir / Path(PADDLE_CRD).name)
        apply_crds(self.control_plane, crd_dir)
        self.ensure_namespace(self.namespace)
        self.pki = make_webhook_pki(
            self.work_dir / "pki", self.CA_NAME, self.CA_ORGANIZATION, f"{self.SERVICE}.{self.namespace}.svc"
        )
        self.apply(self.cert_secret(self.SECRET, self.pki))
        install_serving_cert(self.pki, self.work_dir / "tmp" / "k8s-webhook-server" / "serving-certs")
        self._ensure_rotator_cert_file()

    def _ensure_rotator_cert_file(self) -> None:
        assert self.pki is not None
        if self.ROTATOR_CERT_FILE.exists():
            return
        try:
            self.ROTATOR_CERT_FILE.parent.mkdir(parents=True, exist_ok=True)
            tmp = self.ROTATOR_CERT_FILE.with_name(f".tls.crt.{os.getpid()}.tmp")
            shutil.copyfile(self.pki.cert, tmp)
            os.replace(tmp, self.ROTATOR_CERT_FILE)
        except OSError as error:
            raise EngineError(
                f"training-operator's cert rotator waits for {self.ROTATOR_CERT_FILE} to exist and it "
                f"cannot be created ({error}); create it (any content) and retry"
            ) from error

    def command(self) -> list[str]:
        return [
            str(self.binary),
            *(f"--enable-scheme={scheme}" for scheme in self.SCHEMES),
            "--metrics-bind-address=0",
            f"--health-probe-bind-address=127.0.0.1:{self.probe_port}",
            f"--webhook-server-port={self.webhook_port}",
            f"--webhook-service-name={self.SERVICE}",
            f"--webhook-secret-name={self.SECRET}",
            "--leader-elect=false",
        ]

    def environment(self) -> dict[str, str]:
        return {**super().environment(), "MY_POD_NAMESPACE": self.namespace}

    def before_launch(self) -> None:
        assert self.pki is not None
        [shipped] = load_yaml_documents(self.manifests / "training-operator/webhook/manifests.yaml")
        wanted = {("kubeflow.org", f"{scheme}s") for scheme in self.SCHEMES}
        webhooks = []
        for webhook in shipped["webhooks"]:
            if webhook_resources(webhook) & wanted:
                webhook = copy.deepcopy(webhook)
                webhook["clientConfig"] = url_client_config(
                    webhook["clientConfig"], self.webhook_port, self.pki.ca_bundle
                )
                webhooks.append(webhook)
        self.register_webhook_configuration(
            {
                "apiVersion": "admissionregistration.k8s.io/v1",
                "kind": "ValidatingWebhookConfiguration",
                "metadata": {"name": self.WEBHOOK_CONFIGURATION},
                "webhooks": webhooks,
            }
        )

    def check_webhooks(self) -> None:
        """A valid PaddleJob passes the validating webhook (an invalid one would be refused by it)."""
        self.dry_run_create(paddlejob("webhook-check", "default", workers=1))


#: Kueue's defaults for these tests; `Kueue(config=...)` is merged over them, then the fields the
#: harness owns (ports, cert dir, namespace) are set.
KUEUE_DEFAULT_CONFIG: dict[str, Any] = {
    "apiVersion": "config.kueue.x-k8s.io/v1beta2",
    "kind": "Configuration",
    "manageJobsWithoutQueueName": False,
    # Only namespaces a test opts in (`Kueue.manage(namespace)`): the session's other tests, which
    # may play Kueue by hand, never meet the real one. v0.17's reconcilers respect this selector
    # (feature ManagedJobsNamespaceSelectorAlwaysRespected, on by default); the job webhooks get it
    # as their namespaceSelector.
    "managedJobsNamespaceSelector": {"matchLabels": {MANAGED_NAMESPACE_LABEL: "true"}},
    "leaderElection": {"leaderElect": False},
    "metrics": {"bindAddress": "0"},
    "integrations": {"frameworks": ["batch/job", "kubeflow.org/paddlejob"]},
    "featureGates": {"VisibilityOnDemand": False},
}


class Kueue(Engine):
    """Kueue with `KUEUE_DEFAULT_CONFIG` (+ `config`), its CRDs (with the conversion webhook) and the
    webhooks of its own kinds and of the enabled frameworks registered on loopback."""

    name = "kueue"
    namespace = "kueue-system"
    SERVICE = "kueue-webhook-service"
    SECRET = "kueue-webhook-server-cert"
    CA_NAME, CA_ORGANIZATION = "kueue-ca", "kueue"
    #: config/default's namePrefix: the names Kueue's rotator injects its CA into.
    NAME_PREFIX = "kueue-"

    def __init__(
        self,
        control_plane: ControlPlane,
        work_dir: Path | None = None,
        config: Mapping[str, Any] | None = None,
    ) -> None:
        super().__init__(control_plane, work_dir)
        self.config = deep_merge(KUEUE_DEFAULT_CONFIG, config or {})

    @property
    def frameworks(self) -> list[str]:
        return list(self.config.get("integrations", {}).get("frameworks", []))

    @property
    def config_file(self) -> Path:
        return self.work_dir / "kueue-config.yaml"

    def install(self) -> None:
        self.ensure_namespace(self.namespace)
        self.pki = make_webhook_pki(
            self.work_dir / "pki", self.CA_NAME, self.CA_ORGANIZATION, f"{self.SERVICE}.{self.namespace}.svc"
        )
        self.apply(self.cert_secret(self.SECRET, self.pki))
        install_serving_cert(self.pki, self.work_dir / "certs")
        # The Kubeflow integrations need their CRD before Kueue starts (else set up later, on discovery).
        if "kubeflow.org/paddlejob" in self.frameworks:
            paddle_dir = self.work_dir / "paddle-crd"
            paddle_dir.mkdir(exist_ok=True)
            shutil.copyfile(self.manifests / PADDLE_CRD, paddle_dir / Path(PADDLE_CRD).name)
            apply_crds(self.control_plane, paddle_dir)

    def _crds_with_conversion(self, port: int) -> Path:
        """Kueue's CRDs, with config/components/crd's conversion patches pointed at `port`."""
        assert self.pki is not None
        source = self.manifests / "kueue"
        [kustomization] = load_yaml_documents(source / "crd/kustomization.yaml")
        conversions: dict[str, dict[str, Any]] = {}
        for patch in kustomization.get("patches", []):  # commented-out patches are not in the YAML
            patch_path = source / "crd" / patch["path"]
            if not patch_path.name.startswith("webhook_in_"):
                continue
            [doc] = load_yaml_documents(patch_path)
            conversions[doc["metadata"]["name"]] = doc["spec"]["conversion"]
        out = self.work_dir / "crds"
        shutil.rmtree(out, ignore_errors=True)
        out.mkdir()
        for path in sorted((source / "crds").glob("*.yaml")):
            for index, crd in enumerate(load_yaml_documents(path)):
                conversion = conversions.get(crd["metadata"]["name"])
                if conversion is not None:
                    conversion = copy.deepcopy(conversion)
                    webhook = conversion["webhook"]
                    webhook["clientConfig"] = url_client_config(
                        webhook["clientConfig"], port, self.pki.ca_bundle
                    )
                    crd["spec"]["conversion"] = conversion
                (out / f"{path.stem}-{index}.yaml").write_text(json.dumps(crd))  # JSON is YAML
        return out

    def _webhook_manifests(self, port: int) -> list[dict[str, Any]]:
        assert self.pki is not None
        wanted = {kueue_framework_resource(framework) for framework in self.frameworks}
        configurations = []
        for shipped in load_yaml_documents(self.manifests / "kueue/webhook/manifests.yaml"):
            webhooks = []
            for webhook in shipped["webhooks"]:
                resources = webhook_resources(webhook)
                own = any(group == "kueue.x-k8s.io" for group, _ in resources)
                if not own and not resources & wanted:
                    continue
                webhook = copy.deepcopy(webhook)
                webhook["clientConfig"] = url_client_config(webhook["clientConfig"], port, self.pki.ca_bundle)
                if not own:  # a framework's webhook: only where Kueue manages jobs
                    webhook["namespaceSelector"] = copy.deepcopy(self.config["managedJobsNamespaceSelector"])
                webhooks.append(webhook)
            configurations.append(
                {
                    "apiVersion": shipped["apiVersion"],
                    "kind": shipped["kind"],
                    "metadata": {"name": self.NAME_PREFIX + shipped["metadata"]["name"]},
                    "webhooks": webhooks,
                }
            )
        return configurations

    def before_launch(self) -> None:
        apply_crds(self.control_plane, self._crds_with_conversion(self.webhook_port))
        for configuration in self._webhook_manifests(self.webhook_port):
            self.register_webhook_configuration(configuration)
        config = deep_merge(
            self.config,
            {
                "namespace": self.namespace,
                "health": {"healthProbeBindAddress": f"127.0.0.1:{self.probe_port}"},
                "webhook": {
                    "host": "127.0.0.1",
                    "port": self.webhook_port,
                    "certDir": str(self.work_dir / "certs"),
                },
                "internalCertManagement": {
                    "enable": True,
                    "webhookServiceName": self.SERVICE,
                    "webhookSecretName": self.SECRET,
                },
            },
        )
        self.config_file.write_text(yaml.safe_dump(config, sort_keys=False))

    def command(self) -> list[str]:
        return [str(self.binary), f"--config={self.config_file}"]

    def manage(self, namespace: str) -> None:
        """Opt `namespace` in: label it so Kueue's webhooks and controllers handle its jobs."""
        selector = self.config["managedJobsNamespaceSelector"]
        labels = selector.get("matchLabels", {}) if isinstance(selector, Mapping) else {}
        if not labels or selector.get("matchExpressions"):
            raise EngineError(
                f"manage() needs a matchLabels-only managedJobsNamespaceSelector, not {selector}"
            )
        pairs = [f"{key}={value}" for key, value in labels.items()]
        self.control_plane.kubectl("label", "namespace", namespace, "--overwrite", *pairs)
        # The API server matches webhooks' namespaceSelector against its own cache of namespaces:
        # until the label reaches it, a job created here would pass Kueue by. Wait for that.
        probe = batch_job("kueue-manage-probe", namespace, queue="probe", suspend=False)
        wait_for(
            lambda: self.dry_run_create(probe)["spec"]["suspend"] is True,
            f"Kueue's webhook to handle namespace {namespace}",
            timeout=30,
        )

    def check_webhooks(self) -> None:
        """Kueue's own ResourceFlavor webhooks answer through the apiserver (dry run: nothing stored).

        Their failurePolicy is Fail, so this fails until the webhook server is reachable with our CA;
        the job webhooks are served by the same server (tests/engines checks they suspend)."""
        flavor = {
            "apiVersion": "kueue.x-k8s.io/v1beta2",
            "kind": "ResourceFlavor",
            "metadata": {"name": "check"},
        }
        self.dry_run_create(flavor)


# ---------------------------------------------------------------------------------------------
# Objects the tests create, and playing the kubelet
# ---------------------------------------------------------------------------------------------


def paddlejob(
    name: str,
    namespace: str,
    *,
    workers: int = 2,
    image: str = "kslim/runner:test",
    command: Sequence[str] = ("python", "-c", "print('hello')"),
    restart_policy: str = "OnFailure",
    resources: Mapping[str, Any] | None = None,
    queue: str | None = None,
    suspend: bool | None = None,
    backoff_limit: int | None = None,
) -> dict[str, Any]:
    """A kubeflow.org/v1 PaddleJob in collective mode: `workers` replicas of one container `paddle`."""
    container: dict[str, Any] = {"name": "paddle", "image": image, "command": list(command)}
    if resources:
        container["resources"] = dict(resources)
    run_policy: dict[str, Any] = {}
    if suspend is not None:
        run_policy["suspend"] = suspend
    if backoff_limit is not None:
        run_policy["backoffLimit"] = backoff_limit
    metadata: dict[str, Any] = {"name": name, "namespace": namespace}
    if queue:
        metadata["labels"] = {QUEUE_LABEL: queue}
    spec: dict[str, Any] = {
        "paddleReplicaSpecs": {
            "Worker": {
                "replicas": workers,
                "restartPolicy": restart_policy,
                "template": {"spec": {"containers": [container]}},
            }
        }
    }
    if run_policy:
        spec["runPolicy"] = run_policy
    return {"apiVersion": "kubeflow.org/v1", "kind": "PaddleJob", "metadata": metadata, "spec": spec}


def batch_job(
    name: str,
    namespace: str,
    *,
    queue: str | None = None,
    suspend: bool | None = None,
    resources: Mapping[str, Any] | None = None,
    image: str = "kslim/runner:test",
) -> dict[str, Any]:
    """A one-pod batch/v1 Job (restartPolicy Never, no retries)."""
    container: dict[str, Any] = {"name": "main", "image": image, "command": ["true"]}
    if resources:
        container["resources"] = dict(resources)
    metadata: dict[str, Any] = {"name": name, "namespace": namespace}
    if queue:
        metadata["labels"] = {QUEUE_LABEL: queue}
    spec: dict[str, Any] = {
        "backoffLimit": 0,
        "template": {"spec": {"restartPolicy": "Never", "containers": [container]}},
    }
    if suspend is not None:
        spec["suspend"] = suspend
    return {"apiVersion": "batch/v1", "kind": "Job", "metadata": metadata, "spec": spec}


def _now() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())


def pod_status(
    pod: Mapping[str, Any], phase: str, *, exit_code: int | None = None, restart_count: int = 0
) -> dict[str, Any]:
    """The status a kubelet would write for `pod` (a dict) in `phase` (Running, Succeeded, Failed)."""
    now = _now()
    containers = pod["spec"]["containers"]
    if phase == "Running":
        state: dict[str, Any] = {"running": {"startedAt": now}}
    else:
        code = exit_code if exit_code is not None else (0 if phase == "Succeeded" else 1)
        reason = "Completed" if code == 0 else "Error"
        state = {"terminated": {"exitCode": code, "reason": reason, "startedAt": now, "finishedAt": now}}
    ready = phase == "Running"
    return {
        "phase": phase,
        "startTime": now,
        "conditions": [
            {"type": "PodScheduled", "status": "True", "lastTransitionTime": now},
            {"type": "Ready", "status": "True" if ready else "False", "lastTransitionTime": now},
        ],
        "containerStatuses": [
            {
                "name": c["name"],
                "image": c["image"],
                "imageID": "",
                "ready": ready,
                "started": ready,
                "restartCount": restart_count,
                "state": state,
            }
            for c in containers
        ],
    }


def set_pod_phase(
    api: client.ApiClient,
    namespace: str,
    names: Iterable[str],
    phase: str,
    *,
    exit_code: int | None = None,
    restart_count: int = 0,
) -> None:
    """Play the kubelet: write `phase` (and container states to match) into pods/status."""
    core = client.CoreV1Api(api)
    for name in names:
        pod = api.sanitize_for_serialization(core.read_namespaced_pod(name, namespace))
        status = pod_status(pod, phase, exit_code=exit_code, restart_count=restart_count)
        core.patch_namespaced_pod_status(name, namespace, {"status": status})


def condition(obj: Mapping[str, Any], kind: str) -> dict[str, Any] | None:
    """The status condition of type `kind` in `obj` (a dict), or None."""
    for item in obj.get("status", {}).get("conditions", []) or []:
        if item.get("type") == kind:
            return dict(item)
    return None


def has_condition(obj: Mapping[str, Any], kind: str, status: str = "True") -> bool:
    found = condition(obj, kind)
    return found is not None and found.get("status") == status


__all__ = [
    "KUEUE_DEFAULT_CONFIG",
    "QUEUE_LABEL",
    "EngineError",
    "EnginesMissing",
    "Kueue",
    "TrainingOperator",
    "batch_job",
    "condition",
    "find_engines_dir",
    "has_condition",
    "paddlejob",
    "set_pod_phase",
    "wait_for",
]
