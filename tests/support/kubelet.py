"""A local kubelet for the test control plane: runs kslim runner pods as local processes.

A test and demo tool, never the product's way to run jobs. The test control plane has no
scheduler and no kubelet; this plays both for one Node, so `kubectl apply` of a CompressionJob
runs for real: the operator's Job creates a pod, this binds it to its Node, runs the runner's
command as a local process and writes the pod's status back; `kubectl logs` works too.

Library use (tests)::

    with LocalKubelet(KubeletConfig(kubeconfig=..., root=...)):
        ...

Command line (`make dev-cluster` runs it in the background)::

    python tests/support/kubelet.py --kubeconfig K --root DIR

What it does, and what it does not:
- Registers a Ready Node (default `kslim-local`, address 127.0.0.1) with the machine's CPUs and
  memory and an advertised `nvidia.com/gpu: 8` (so GPU requests fit; no device is really
  assigned), labelled like a GPU node (`nvidia.com/gpu.compute.major`) so the operator's default
  GPU affinity matches. `daemonEndpoints.kubeletEndpoint.Port` is its own HTTPS log server.
- Scheduler: binds every unscheduled pod (default scheduler) that fits the Node alone: its
  nodeSelector, required node affinity (matchExpressions/matchFields), resource requests against
  the Node's allocatable, and existing PersistentVolumeClaims. It does not sum the requests of
  pods already running, ignores taints/tolerations, pod (anti-)affinity and topology spread, and
  does not wait for claims to be Bound (nothing binds them on the test control plane). A pod that
  does not fit gets `PodScheduled=False, reason Unschedulable` and is retried every few seconds,
  as a real scheduler does.
- Runs only the runner's own entry point, `kslim run ...` (command, or the runner image's
  ENTRYPOINT when the pod gives only args), and only from a runner image (repository ending in
  `kslim/runner` or `kslim-runner`, or `--runner-image`). Anything else ends Failed at once with
  reason `NotKslimRunner`. The executable is this environment's `kslim` (next to
  `sys.executable`), run as the current user: securityContext, resource limits, image pull policy
  and readOnlyRootFilesystem are not enforced.
- Volumes: configMap and secret volumes are written to local folders, emptyDirs are folders under
  the pod's folder, a persistentVolumeClaim is `<root>/pvc/<claim>` (subPath honoured). Mount
  paths are rewritten in the command's args and in env values (so `/etc/kslim/job.yaml` and
  `/output` point to local folders), `KSLIM_PVC_ROOT` is set to `<root>/pvc`, and the
  termination message path to a local file. Other volume types end the pod Failed with reason
  `UnsupportedPod`, a missing ConfigMap/Secret (after a short wait) with `ConfigError`.
- Environment: only the pod's env (value, fieldRef, configMap/secret keys; `$(VAR)` expanded
  from the variables defined before it, as Kubernetes does), plus PATH, HOSTNAME (the pod's
  hostname) and the `kubernetes` Service variables (pointing at the API server).
- Pod network, so that the pods of a multi-node job reach each other by name as on a cluster
  (training-operator gives each worker pod a headless Service of the same name):
  - Pod IP: each pod gets its own address from `--pod-cidr` (default 127.10.0.0/16; Linux answers
    every address of 127.0.0.0/8 on `lo`), round robin from a random start, freed when the pod
    ends. It is written to status.podIP/podIPs (the API server accepts loopback pod IPs; it
    refuses them in Endpoints and EndpointSlices, one reason this kubelet plays cluster DNS
    itself, below) and is what `fieldRef: status.podIP` gives. A pod refused before it starts
    gets none; hostIP stays 127.0.0.1. Processes still share the host's network namespace: they
    reach the API server, the S3 server, ... on 127.0.0.1 as before, and their outgoing
    connections come from 127.0.0.1 unless they bind a source address (on a cluster: the pod IP).
  - Names: each process runs in its own mount and UTS namespaces: `unshare --mount --uts
    --propagation private` as root; otherwise `unshare --user --map-root-user --mount --uts`, and
    a nested user namespace maps it back to its own uid/gid (or it stays uid 0 inside, where that
    fails). Its hostname is spec.hostname or the pod name; `<root>/pods/<uid>/etc-hosts` is
    bind-mounted on /etc/hosts: the kubelet's own lines (localhost; the pod's hostname, with
    spec.subdomain as `<hostname>.<subdomain>.<ns>.svc.cluster.local` too; hostAliases), then what
    cluster DNS would answer for each headless Service (clusterIP None) with a selector:
    `svc.<ns>.svc.cluster.local`, `svc.<ns>.svc`, `svc.<ns>` (and `svc` in the pod's own
    namespace: /etc/hosts has no search list) -> the IP of each pod it selects that has an IP,
    has not ended and is Ready and not terminating (any such pod with publishNotReadyAddresses),
    and `<hostname>.<svc>...` -> a selected pod whose subdomain is the Service. The files are
    rewritten in place (the bind mount pins the inode; lookups never see an empty file) on every
    pod event, after this kubelet's own status writes and on the resync (every 3 s; Services are
    reread then and when a pod starts), so a pod started before its peer resolves the peer once
    that runs. Each step of the wrapper (`unshare`, `sh -c 'mount --bind ...; hostname ...;
    exec ...'`) execs the next, so the runner keeps the started pid, process group and
    PR_SET_PDEATHSIG. The way that works is probed once per process (this Python, through the
    wrapper, must see the hostname and resolve a name from the mounted file); if none does (no
    `unshare`, no user namespaces) or with `--no-pod-namespaces`, the kubelet logs once that pod
    names do not resolve and runs pods as plain processes (own IP; the host's /etc/hosts and
    hostname). Not a DNS server: only lookups that read /etc/hosts (glibc's getaddrinfo with
    `files` in nsswitch.conf, Go's resolver, ...) see these names, and ClusterIP Services do not
    resolve (nothing here would forward their virtual IP).
  - Ports: each pod can listen on the same port on its own IP, but a process that binds 0.0.0.0
    takes the port on every address of `lo`, i.e. for every pod: two such processes on one fixed
    port clash (and a bind to a pod IP fails while one holds it). Paddle 2.6's TCPStore (the
    rendezvous of `paddle.distributed.init_parallel_env`, rank 0 only, at PADDLE_MASTER's port)
    binds 0.0.0.0, so two multi-node jobs running at once on this kubelet collide on
    training-operator's default port 36543; gloo's own connections bind the address the
    hostname resolves to (here the pod IP) on ephemeral ports.
- Status: Running with startTime and containerStatuses, then Succeeded/Failed with exitCode,
  reason and message = the termination message (FallbackToLogsOnError: the log's last lines).
  A pod it cannot run ends Failed with a reason, never hangs.
- Logs: `GET /containerLogs/{ns}/{pod}/{container}` over HTTPS (tailLines, sinceSeconds,
  sinceTime, limitBytes, timestamps, follow), which the API server proxies `kubectl logs` and
  pods/log to. The API server does not verify a kubelet's serving certificate unless
  `--kubelet-certificate-authority` is set (the test control plane does not set it; Kubernetes'
  KubeletClientConfig.transportConfig sets TLS.Insecure when it has no CA), and sends no client
  certificate, so the server listens on 127.0.0.1 only and does not authenticate.
- Deletion: a deleted pod's process gets SIGTERM, then SIGKILL after the grace period; its status
  is written (Failed, exit 143/137) and the deletion is finished with grace 0 (the Job controller
  deletes the pods of a suspended Job, so suspension stops the process too). Runner processes
  die with the kubelet (PR_SET_PDEATHSIG); a restarted kubelet marks pods it lost Failed.
"""

from __future__ import annotations

import argparse
import base64
import contextlib
import ctypes
import datetime
import http.server
import ipaddress
import json
import logging
import os
import platform
import random
import re
import shlex
import shutil
import signal
import ssl
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, cast

import yaml

log = logging.getLogger("kslim.local-kubelet")

Obj = dict[str, Any]

NODE_NAME = "kslim-local"
NODE_IP = "127.0.0.1"
RUNNER_ENTRYPOINT = ("kslim", "run")
#: The runner image's CMD (Dockerfile), used when a pod gives neither command nor args.
RUNNER_DEFAULT_ARGS = ("/etc/kslim/job.yaml", "--output", "/output")
DEFAULT_RUNNER_IMAGES = ("kslim/runner", "kslim-runner")
DEFAULT_GPUS = 8
DEFAULT_GPU_COMPUTE_MAJOR = 8
GPU_RESOURCE = "nvidia.com/gpu"
DEFAULT_SCHEDULER = "default-scheduler"
DEFAULT_TERMINATION_MESSAGE_PATH = "/dev/termination-log"
PVC_ROOT_ENV = "KSLIM_PVC_ROOT"
#: Kubelet limits: termination message file, and the log fallback (last lines / bytes).
TERMINATION_MESSAGE_MAX_BYTES = 4096
FALLBACK_LOG_LINES = 80
FALLBACK_LOG_BYTES = 2048
#: Exit code and reasons of a container that could not start (as containerd reports a start error).
START_ERROR_EXIT_CODE = 128
REASON_NOT_RUNNER = "NotKslimRunner"
REASON_UNSUPPORTED = "UnsupportedPod"
REASON_CONFIG = "ConfigError"
REASON_START = "StartError"
REASON_LOST = "KubeletRestarted"
REASON_SHUTDOWN = "NodeShutdown"
RESYNC_SECONDS = 3.0
HEARTBEAT_SECONDS = 30.0
WATCH_TIMEOUT_SECONDS = 60
REQUEST_TIMEOUT_SECONDS = 30.0
MAX_GRACE_SECONDS = 30.0
PR_SET_PDEATHSIG = 1


class PodRejected(Exception):
    """The kubelet cannot run this pod; it ends Failed with `reason` and `message`."""

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason
        self.message = message


# =============================================================================================
# Pure parts: images and commands
# =============================================================================================


def image_repository(image: str) -> str:
    """`registry:5000/kslim/runner:0.1.0@sha256:...` -> `registry:5000/kslim/runner`."""
    name = image.split("@", 1)[0]
    slash, colon = name.rfind("/"), name.rfind(":")
    return name[:colon] if colon > slash else name


def is_runner_image(image: str, accepted: Sequence[str]) -> bool:
    """Whether the image's repository is (or ends in `/`) one of `accepted`."""
    repository = image_repository(image)
    return any(repository == name or repository.endswith(f"/{name}") for name in accepted)


def container_argv(container: Mapping[str, Any]) -> list[str]:
    """command + args as the runtime would run them; the runner image's ENTRYPOINT/CMD fill gaps."""
    command = [str(c) for c in container.get("command") or []]
    args = [str(a) for a in container.get("args") or []]
    if not command:
        command = list(RUNNER_ENTRYPOINT)
        if not args:
            args = list(RUNNER_DEFAULT_ARGS)
    return command + args


def runner_args(container: Mapping[str, Any], accepted_images: Sequence[str]) -> list[str]:
    """The arguments after `kslim run`; PodRejected unless this is the runner's own entry point."""
    name = container.get("name", "?")
    argv = container_argv(container)
    if len(argv) < 2 or Path(argv[0]).name != RUNNER_ENTRYPOINT[0] or argv[1] != RUNNER_ENTRYPOINT[1]:
        raise PodRejected(
            REASON_NOT_RUNNER,
            f"the kslim local kubelet only runs kslim's runner (`kslim run JOB --output DIR`); "
            f"container {name!r} asks for {shlex.join(argv)!r}",
        )
    image = str(container.get("image") or "")
    if not is_runner_image(image, accepted_images):
        raise PodRejected(
            REASON_NOT_RUNNER,
            f"the kslim local kubelet only runs kslim's runner image ({', '.join(accepted_images)}); "
            f"container {name!r} has image {image!r}",
        )
    return argv[2:]


def check_pod_supported(pod: Mapping[str, Any]) -> Obj:
    """The pod's one runner container; PodRejected for what this kubelet cannot do."""
    spec = pod.get("spec") or {}
    containers = spec.get("containers") or []
    if spec.get("initContainers"):
        raise PodRejected(REASON_UNSUPPORTED, "init containers are not supported by the kslim local kubelet")
    if len(containers) != 1:
        raise PodRejected(
            REASON_UNSUPPORTED,
            f"the kslim local kubelet runs pods with exactly one container (the runner), "
            f"not {len(containers)}",
        )
    policy = spec.get("restartPolicy") or "Always"
    if policy != "Never":
        raise PodRejected(
            REASON_UNSUPPORTED,
            f"restartPolicy {policy} is not supported by the kslim local kubelet "
            "(the operator's pods use Never)",
        )
    return dict(containers[0])


# =============================================================================================
# Pure parts: volumes, paths, env
# =============================================================================================


def _clean(container_path: str) -> str:
    return "/" + container_path.strip("/") if container_path.strip("/") else "/"


@dataclass(frozen=True)
class PathMap:
    """Container paths -> local paths; the longest matching container path wins."""

    entries: tuple[tuple[str, Path], ...] = ()

    @classmethod
    def of(cls, pairs: Mapping[str, Path]) -> PathMap:
        items = sorted(((_clean(k), v) for k, v in pairs.items()), key=lambda kv: -len(kv[0]))
        return cls(tuple(items))

    def local(self, container_path: str) -> Path | None:
        """The local path of an absolute container path, or None if no mount covers it."""
        if not container_path.startswith("/"):
            return None
        for mount, local in self.entries:
            if container_path == mount:
                return local
            if container_path.startswith(mount.rstrip("/") + "/"):
                return local / container_path[len(mount) :].lstrip("/")
        return None

    def rewrite(self, value: str) -> str:
        """A path (or `--flag=path`) under a mount, with the local path instead; anything else as is."""
        mapped = self.local(value)
        if mapped is not None:
            return str(mapped)
        key, sep, rest = value.partition("=")
        if sep and key and (mapped := self.local(rest)) is not None:
            return f"{key}={mapped}"
        return value


def volume_dirs(pod: Mapping[str, Any], pod_dir: Path, pvc_root: Path) -> dict[str, Path]:
    """Local folder of each volume; PodRejected for volume types the kubelet does not support."""
    dirs: dict[str, Path] = {}
    for volume in (pod.get("spec") or {}).get("volumes") or []:
        name = volume["name"]
        if "persistentVolumeClaim" in volume:
            dirs[name] = pvc_root / volume["persistentVolumeClaim"]["claimName"]
        elif any(kind in volume for kind in ("emptyDir", "configMap", "secret")):
            dirs[name] = pod_dir / "volumes" / name
        else:
            kinds = sorted(k for k in volume if k != "name")
            raise PodRejected(
                REASON_UNSUPPORTED,
                f"volume {name!r} ({', '.join(kinds)}) is not supported by the kslim local kubelet "
                "(configMap, secret, emptyDir and persistentVolumeClaim are)",
            )
    return dirs


def mount_paths(container: Mapping[str, Any], dirs: Mapping[str, Path], termination_file: Path) -> PathMap:
    """The container's mounts (subPath honoured) plus its termination message path."""
    pairs: dict[str, Path] = {}
    for mount in container.get("volumeMounts") or []:
        name, target = mount["name"], str(mount["mountPath"])
        if name not in dirs:
            raise PodRejected(REASON_UNSUPPORTED, f"volumeMount {target} names unknown volume {name!r}")
        if _clean(target) == "/":
            raise PodRejected(REASON_UNSUPPORTED, "a volume mounted at / is not supported")
        sub = str(mount.get("subPath") or "").strip("/")
        if ".." in Path(sub).parts:
            raise PodRejected(REASON_UNSUPPORTED, f"subPath {sub!r} of {target} leaves its volume")
        pairs[target] = dirs[name] / sub if sub else dirs[name]
    path = str(container.get("terminationMessagePath") or DEFAULT_TERMINATION_MESSAGE_PATH)
    pairs[path] = termination_file
    return PathMap.of(pairs)


_VAR_REF = re.compile(r"\$\$|\$\(([A-Za-z_][A-Za-z0-9_.-]*)\)")


def expand(value: str, env: Mapping[str, str]) -> str:
    """Kubernetes' `$(VAR)` expansion (unknown references stay as written; `$$` is a literal `$`)."""

    def replace(match: re.Match[str]) -> str:
        if match.group(0) == "$$":
            return "$"
        return env.get(match.group(1), match.group(0))

    return _VAR_REF.sub(replace, value)


KeyLookup = Callable[[str, str, str], "str | None"]


def pod_field(pod: Mapping[str, Any], path: str, node_name: str, pod_ip: str = NODE_IP) -> str | None:
    """A downward-API fieldRef value."""
    meta, spec = pod.get("metadata") or {}, pod.get("spec") or {}
    simple = {
        "metadata.name": meta.get("name"),
        "metadata.namespace": meta.get("namespace"),
        "metadata.uid": meta.get("uid"),
        "spec.nodeName": node_name,
        "spec.serviceAccountName": spec.get("serviceAccountName"),
        "status.podIP": pod_ip,
        "status.podIPs": pod_ip,
        "status.hostIP": NODE_IP,
        "status.hostIPs": NODE_IP,
    }
    if path in simple:
        value = simple[path]
        return None if value is None else str(value)
    match = re.fullmatch(r"metadata\.(labels|annotations)\['(.+)'\]", path)
    if match:
        return (meta.get(match.group(1)) or {}).get(match.group(2))
    return None


def container_env(
    container: Mapping[str, Any],
    pod: Mapping[str, Any],
    paths: PathMap,
    *,
    base: Mapping[str, str],
    pvc_root: Path,
    node_name: str,
    lookup_key: KeyLookup,
    pod_ip: str = NODE_IP,
) -> dict[str, str]:
    """The process environment: `base` (PATH, HOSTNAME), then the container's env in order, with
    `$(VAR)` expanded (references to variables defined earlier in the list, as Kubernetes does),
    mount paths rewritten and KSLIM_PVC_ROOT pointing to the local claims."""
    env = dict(base)
    if container.get("envFrom"):
        raise PodRejected(REASON_UNSUPPORTED, "envFrom is not supported by the kslim local kubelet")
    for item in container.get("env") or []:
        name = item["name"]
        if "valueFrom" not in item:
            env[name] = paths.rewrite(expand(str(item.get("value") or ""), env))
            continue
        source = item["valueFrom"]
        value: str | None
        if "fieldRef" in source:
            value = pod_field(pod, source["fieldRef"]["fieldPath"], node_name, pod_ip)
        elif "configMapKeyRef" in source or "secretKeyRef" in source:
            kind = "configMap" if "configMapKeyRef" in source else "secret"
            ref = source[f"{kind}KeyRef"]
            value = lookup_key(kind, ref["name"], ref["key"])
            if value is None and not ref.get("optional"):
                raise PodRejected(
                    REASON_CONFIG, f"env {name}: key {ref['key']!r} of {kind} {ref['name']!r} not found"
                )
        else:
            raise PodRejected(REASON_UNSUPPORTED, f"env {name}: {', '.join(source)} is not supported")
        if value is not None:
            env[name] = value
    if PVC_ROOT_ENV in env:
        env[PVC_ROOT_ENV] = str(pvc_root)
    return env


def service_env(server: str) -> dict[str, str]:
    """The `kubernetes` Service variables every container gets (enableServiceLinks or not); here
    they point at the API server itself, which a local process can reach."""
    url = urllib.parse.urlsplit(server)
    host, port = url.hostname or NODE_IP, str(url.port or 443)
    return {
        "KUBERNETES_SERVICE_HOST": host,
        "KUBERNETES_SERVICE_PORT": port,
        "KUBERNETES_SERVICE_PORT_HTTPS": port,
        "KUBERNETES_PORT": f"tcp://{host}:{port}",
    }


# =============================================================================================
# Pure parts: the pod network (pod IPs, /etc/hosts, the namespaces a pod's process runs in)
# =============================================================================================

#: Pod IPs come from loopback: Linux answers every address of 127.0.0.0/8 on `lo`, no setup needed.
POD_CIDR = "127.10.0.0/16"
#: Never handed out, should a pod CIDR cover them (localhost, Debian's hostname line, resolved).
RESERVED_IPS = frozenset({"127.0.0.1", "127.0.1.1", "127.0.0.53"})
CLUSTER_DOMAIN = "cluster.local"
HOSTS_FILE = "etc-hosts"  # in the pod's folder; its process sees it as /etc/hosts
#: The kubelet's own lines of a pod's /etc/hosts (kubelet_pods.go, managedHostsHeader).
MANAGED_HOSTS_HEADER = (
    "# Kubernetes-managed hosts file.\n"
    "127.0.0.1\tlocalhost\n"
    "::1\tlocalhost ip6-localhost ip6-loopback\n"
    "fe00::0\tip6-localnet\n"
    "fe00::0\tip6-mcastprefix\n"
    "fe00::1\tip6-allnodes\n"
    "fe00::2\tip6-allrouters\n"
)
HEADLESS_HEADER = "# Headless Services (the kslim local kubelet's stand-in for cluster DNS).\n"
#: Runs inside the new namespaces: $1 the hosts file, $2 the hostname, then the program. The
#: tools by absolute path (the pod's env may set PATH); `exec` finds the program with it.
NAMESPACE_SCRIPT = '{mount} --bind "$1" /etc/hosts && {hostname} "$2" && shift 2 && exec "$@"'
NAMESPACE_TOOLS = ("unshare", "sh", "mount", "hostname")


class PodIPPool:
    """Pod IPs from a loopback network, handed out round robin from a random start: a freed
    address is not reused at once, and two kubelets on one machine rarely hand out the same one."""

    def __init__(self, cidr: str = POD_CIDR, start: int | None = None) -> None:
        network = ipaddress.IPv4Network(cidr)
        if not network.is_loopback or network.num_addresses < 4:
            raise ValueError(f"pod CIDR {cidr} must be a loopback network (in 127.0.0.0/8) of 4 or more")
        self.cidr = cidr
        self._first = int(network.network_address) + 1
        self._count = network.num_addresses - 2  # without the network and broadcast addresses
        self._next = random.randrange(self._count) if start is None else start % self._count
        self._used: dict[str, str] = {}  # address -> owner (pod uid)
        self._lock = threading.Lock()

    def allocate(self, owner: str) -> str:
        with self._lock:
            for _ in range(self._count):
                address = ipaddress.IPv4Address(self._first + self._next)
                self._next = (self._next + 1) % self._count
                text = str(address)
                if text not in RESERVED_IPS and address.packed[-1] not in (0, 255) and text not in self._used:
                    self._used[text] = owner
                    return text
        raise PodRejected(REASON_START, f"no free pod IP left in {self.cidr}")

    def release(self, address: str) -> None:
        with self._lock:
            self._used.pop(address, None)

    def in_use(self) -> dict[str, str]:
        with self._lock:
            return dict(self._used)


def pod_hostname(pod: Mapping[str, Any]) -> str:
    """spec.hostname, else the pod's name cut to 63 characters (as the kubelet does)."""
    spec, meta = pod.get("spec") or {}, pod.get("metadata") or {}
    return str(spec.get("hostname") or str(meta.get("name") or "pod")[:63].rstrip("-."))


def _is_ready(pod: Mapping[str, Any]) -> bool:
    conditions = (pod.get("status") or {}).get("conditions") or []
    return any(c.get("type") == "Ready" and c.get("status") == "True" for c in conditions)


def headless_pods(service: Mapping[str, Any], pods: Sequence[Mapping[str, Any]]) -> list[Obj]:
    """The pods a headless Service's name resolves to in cluster DNS: those its selector matches
    in its namespace that have an IP and have not ended, and are Ready (and not terminating)
    unless the Service publishes not-ready addresses; ordered by name, one per IP."""
    meta, spec = service.get("metadata") or {}, service.get("spec") or {}
    selector = spec.get("selector") or {}
    if not selector:
        return []
    publish = bool(spec.get("publishNotReadyAddresses"))
    chosen: dict[str, Obj] = {}
    for pod in sorted(pods, key=lambda p: str((p.get("metadata") or {}).get("name"))):
        pod_meta, status = pod.get("metadata") or {}, pod.get("status") or {}
        labels = pod_meta.get("labels") or {}
        if pod_meta.get("namespace") != meta.get("namespace"):
            continue
        if any(labels.get(key) != value for key, value in selector.items()):
            continue
        address = status.get("podIP")
        if not address or status.get("phase") in ("Succeeded", "Failed"):
            continue
        if publish or (_is_ready(pod) and not pod_meta.get("deletionTimestamp")):
            chosen.setdefault(str(address), dict(pod))
    return list(chosen.values())


def is_headless(service: Mapping[str, Any]) -> bool:
    spec = service.get("spec") or {}
    return spec.get("clusterIP") == "None" and bool(spec.get("selector"))


def _dns_names(name: str, namespace: str, own_namespace: str, domain: str) -> list[str]:
    """`name` as a pod in `own_namespace` can write it (/etc/hosts has no search list)."""
    names = [f"{name}.{namespace}.svc.{domain}", f"{name}.{namespace}.svc", f"{name}.{namespace}"]
    return [*names, name] if namespace == own_namespace else names


def hosts_file(
    pod: Mapping[str, Any],
    pod_ip: str,
    services: Sequence[Mapping[str, Any]],
    pods: Sequence[Mapping[str, Any]],
    domain: str = CLUSTER_DOMAIN,
) -> str:
    """A pod's /etc/hosts: the kubelet's lines (localhost, the pod's hostname, hostAliases), then
    what cluster DNS would answer for each headless Service with a selector: the Service's name
    -> the IPs of its pods, and `<hostname>.<service>` -> a selected pod that names the Service as
    its subdomain. Names of the pod's own namespace also in their short form."""
    meta, spec = pod.get("metadata") or {}, pod.get("spec") or {}
    own = str(meta.get("namespace") or "default")
    hostname, subdomain = pod_hostname(pod), spec.get("subdomain")
    text = MANAGED_HOSTS_HEADER
    if subdomain:
        text += f"{pod_ip}\t{hostname}.{subdomain}.{own}.svc.{domain}\t{hostname}\n"
    else:
        text += f"{pod_ip}\t{hostname}\n"
    aliases = spec.get("hostAliases") or []
    if aliases:
        text += "\n# Entries added by HostAliases.\n"
        for alias in aliases:
            text += f"{alias.get('ip')}\t{chr(9).join(alias.get('hostnames') or [])}\n"
    lines: list[str] = []
    for service in sorted(
        (s for s in services if is_headless(s)),
        key=lambda s: (str(s["metadata"].get("namespace")), str(s["metadata"].get("name"))),
    ):
        name, namespace = str(service["metadata"]["name"]), str(service["metadata"]["namespace"])
        selected = headless_pods(service, pods)
        for peer in selected:
            address = peer["status"]["podIP"]
            lines.append(f"{address}\t{' '.join(_dns_names(name, namespace, own, domain))}\n")
        for peer in selected:
            peer_spec = peer.get("spec") or {}
            if peer_spec.get("hostname") and peer_spec.get("subdomain") == name:
                names = _dns_names(f"{peer_spec['hostname']}.{name}", namespace, own, domain)
                lines.append(f"{peer['status']['podIP']}\t{' '.join(names)}\n")
    if lines:
        text += "\n" + HEADLESS_HEADER + "".join(lines)
    return text


def write_in_place(path: Path, text: str) -> None:
    """Replace a file's content and keep its inode: a bind mount pins the inode, so a file renamed
    over it would never be seen through the mount. Name lookups reread /etc/hosts each time and
    never find it empty: the new bytes overwrite the old in one write (a shorter text padded with
    a comment line), then the file is cut to the new length."""
    data = text.encode()
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        gap = os.fstat(fd).st_size - len(data)
        pad = b"" if gap <= 0 else b"\n" if gap == 1 else b"#" + b" " * (gap - 2) + b"\n"
        os.pwrite(fd, data + pad, 0)
        os.ftruncate(fd, len(data))
    finally:
        os.close(fd)


@dataclass(frozen=True)
class Isolation:
    """How a pod's process gets its own mount and UTS namespaces (own /etc/hosts and hostname):
    `unshare` runs `sh -c NAMESPACE_SCRIPT`, which runs `then` + the program."""

    name: str
    unshare: tuple[str, ...]
    then: tuple[str, ...] = ()
    tools: Mapping[str, str] = field(default_factory=lambda: {t: t for t in NAMESPACE_TOOLS})

    def argv(self, hosts: Path, hostname: str, program: Sequence[str]) -> list[str]:
        """The command line; every step execs the next, so the program keeps the started process's
        pid, process group and PR_SET_PDEATHSIG."""
        script = NAMESPACE_SCRIPT.format(
            mount=shlex.quote(self.tools["mount"]), hostname=shlex.quote(self.tools["hostname"])
        )
        return [*self.unshare, self.tools["sh"], "-c", script, "kslim-pod", str(hosts), hostname,
                *self.then, *program]  # fmt: skip


def isolation_candidates(euid: int, egid: int, tools: Mapping[str, str] | None = None) -> list[Isolation]:
    """What to try, best first: as root, plain mount+UTS namespaces; otherwise a user namespace
    in which we are root (to mount), then a nested one that maps us back to our own uid/gid.
    `tools`: absolute paths of NAMESPACE_TOOLS (default: the names as they are)."""
    paths = dict(tools or {t: t for t in NAMESPACE_TOOLS})
    unshare = paths["unshare"]
    namespaces = ("--mount", "--uts", "--propagation", "private")
    user = (unshare, "--user", "--map-root-user", *namespaces)
    if euid == 0:
        return [
            Isolation("mount+UTS namespaces", (unshare, *namespaces), tools=paths),
            Isolation("user namespace", user, tools=paths),
        ]
    back = (unshare, "--user", f"--map-user={euid}", f"--map-group={egid}")
    return [
        Isolation("user namespace", user, back, tools=paths),
        Isolation("user namespace (uid 0 inside)", user, tools=paths),
    ]


# =============================================================================================
# Pure parts: scheduling
# =============================================================================================

_SUFFIXES = {
    "n": 1e-9, "u": 1e-6, "m": 1e-3, "": 1.0, "k": 1e3, "M": 1e6, "G": 1e9, "T": 1e12, "P": 1e15, "E": 1e18,
    "Ki": 2.0**10, "Mi": 2.0**20, "Gi": 2.0**30, "Ti": 2.0**40, "Pi": 2.0**50, "Ei": 2.0**60,
}  # fmt: skip
_QUANTITY = re.compile(r"^([+-]?[0-9.]+)(?:[eE]([+-]?[0-9]+))?([a-zA-Z]*)$")


def parse_quantity(text: str | int | float) -> float:
    """A Kubernetes resource quantity (`500m`, `4Gi`, `1e3`, `2`) as a number."""
    match = _QUANTITY.match(str(text).strip())
    if not match or match.group(3) not in _SUFFIXES:
        raise ValueError(f"not a quantity: {text!r}")
    number, exponent, suffix = match.groups()
    return float(number) * 10.0 ** int(exponent or 0) * _SUFFIXES[suffix]


def pod_requests(pod: Mapping[str, Any]) -> dict[str, float]:
    """Sum of the containers' requests (limits where requests are not given, as the API defaults)."""
    total: dict[str, float] = {}
    for container in (pod.get("spec") or {}).get("containers") or []:
        resources = container.get("resources") or {}
        amounts = {**(resources.get("limits") or {}), **(resources.get("requests") or {})}
        for name, quantity in amounts.items():
            total[name] = total.get(name, 0.0) + parse_quantity(quantity)
    return total


def _expression_matches(expression: Mapping[str, Any], values: Mapping[str, str]) -> bool:
    key, operator = expression["key"], expression["operator"]
    wanted = [str(v) for v in expression.get("values") or []]
    present, value = key in values, values.get(key)
    if operator == "In":
        return present and value in wanted
    if operator == "NotIn":
        return not present or value not in wanted
    if operator == "Exists":
        return present
    if operator == "DoesNotExist":
        return not present
    if operator in ("Gt", "Lt") and present and wanted:
        try:
            have, limit = int(str(value)), int(wanted[0])
        except ValueError:
            return False
        return have > limit if operator == "Gt" else have < limit
    return False


def _term_matches(term: Mapping[str, Any], labels: Mapping[str, str], node_name: str) -> bool:
    fields = {"metadata.name": node_name}
    return all(_expression_matches(e, labels) for e in term.get("matchExpressions") or []) and all(
        _expression_matches(e, fields) for e in term.get("matchFields") or []
    )


def unschedulable_reason(
    pod: Mapping[str, Any], node_name: str, labels: Mapping[str, str], allocatable: Mapping[str, float]
) -> str | None:
    """Why the pod does not fit this Node alone (scheduler wording), or None when it fits."""
    spec = pod.get("spec") or {}
    selector = spec.get("nodeSelector") or {}
    terms = (
        (
            ((spec.get("affinity") or {}).get("nodeAffinity") or {}).get(
                "requiredDuringSchedulingIgnoredDuringExecution"
            )
        )
        or {}
    ).get("nodeSelectorTerms") or []
    selector_ok = all(labels.get(k) == v for k, v in selector.items())
    affinity_ok = not terms or any(_term_matches(t, labels, node_name) for t in terms)
    if not (selector_ok and affinity_ok):
        return "0/1 nodes are available: 1 node(s) didn't match Pod's node affinity/selector."
    short = sorted(name for name, amount in pod_requests(pod).items() if amount > allocatable.get(name, 0.0))
    if short:
        return "0/1 nodes are available: " + ", ".join(f"1 Insufficient {name}" for name in short) + "."
    return None


def pod_claims(pod: Mapping[str, Any]) -> list[str]:
    return sorted(
        {
            v["persistentVolumeClaim"]["claimName"]
            for v in (pod.get("spec") or {}).get("volumes") or []
            if "persistentVolumeClaim" in v
        }
    )


# =============================================================================================
# Pure parts: logs
# =============================================================================================


@dataclass(frozen=True)
class LogEntry:
    time: float
    line: bytes  # without the newline


def rfc3339(when: float, nanos: bool = False) -> str:
    moment = datetime.datetime.fromtimestamp(when, datetime.UTC)
    if nanos:
        return moment.strftime("%Y-%m-%dT%H:%M:%S.%f") + "000Z"
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


def parse_rfc3339(text: str) -> float:
    return datetime.datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()


def select_entries(
    entries: Sequence[LogEntry], *, tail_lines: int | None, since: float | None
) -> list[LogEntry]:
    """Entries at or after `since`, then the last `tail_lines` of them (kubelet order)."""
    chosen = [e for e in entries if since is None or e.time >= since]
    if tail_lines is not None and tail_lines >= 0:
        chosen = chosen[len(chosen) - tail_lines :] if tail_lines else []
    return chosen


def render_entries(entries: Sequence[LogEntry], *, timestamps: bool) -> bytes:
    prefix = (lambda e: f"{rfc3339(e.time, nanos=True)} ".encode()) if timestamps else (lambda e: b"")
    return b"".join(prefix(e) + e.line + b"\n" for e in entries)


@dataclass(frozen=True)
class LogQuery:
    tail_lines: int | None = None
    since: float | None = None
    limit_bytes: int | None = None
    timestamps: bool = False
    follow: bool = False


def parse_log_query(query: Mapping[str, Sequence[str]], now: float) -> LogQuery:
    """The kubelet's /containerLogs parameters; ValueError for unsupported or bad ones."""

    def one(name: str) -> str | None:
        values = query.get(name)
        return values[-1] if values else None

    def flag(name: str) -> bool:
        return (one(name) or "false").lower() in ("1", "true", "yes")

    if flag("previous"):
        raise ValueError(
            "previous terminated container not found (the kslim local kubelet never restarts one)"
        )
    since: float | None = None
    if one("sinceSeconds") is not None:
        since = now - int(str(one("sinceSeconds")))
    elif one("sinceTime") is not None:
        since = parse_rfc3339(str(one("sinceTime")))
    tail = one("tailLines")
    limit = one("limitBytes")
    return LogQuery(
        tail_lines=int(tail) if tail is not None else None,
        since=since,
        limit_bytes=int(limit) if limit is not None else None,
        timestamps=flag("timestamps"),
        follow=flag("follow"),
    )


def fallback_message(entries: Sequence[LogEntry]) -> str:
    """FallbackToLogsOnError: the log's last lines, at most 80 lines / 2048 bytes (as the kubelet)."""
    text = render_entries(entries[-FALLBACK_LOG_LINES:], timestamps=False)[-FALLBACK_LOG_BYTES:]
    return text.decode("utf-8", errors="replace")


# =============================================================================================
# Pure parts: statuses
# =============================================================================================


def _condition(kind: str, status: bool, now: str, reason: str | None = None, message: str = "") -> Obj:
    condition: Obj = {"type": kind, "status": "True" if status else "False", "lastTransitionTime": now}
    if reason:
        condition["reason"] = reason
    if message:
        condition["message"] = message
    return condition


def unschedulable_condition(message: str, now: str) -> Obj:
    return _condition("PodScheduled", False, now, "Unschedulable", message)


def _base_status(
    phase: str, start_time: str, conditions: list[Obj], container_status: Obj, pod_ip: str | None
) -> Obj:
    status: Obj = {
        "phase": phase,
        "startTime": start_time,
        "hostIP": NODE_IP,
        "hostIPs": [{"ip": NODE_IP}],
        "conditions": conditions,
        "containerStatuses": [container_status],
    }
    if pod_ip:  # a pod that never got one (refused before it started) has none, as on a cluster
        status["podIP"], status["podIPs"] = pod_ip, [{"ip": pod_ip}]
    return status


def _container_status(
    container: Mapping[str, Any], state: Obj, container_id: str | None, running: bool
) -> Obj:
    status: Obj = {
        "name": container["name"],
        "image": container.get("image") or "",
        "imageID": "",
        "ready": running,
        "started": running,
        "restartCount": 0,
        "state": state,
    }
    if container_id:
        status["containerID"] = container_id
    return status


def running_status(
    container: Mapping[str, Any], *, started: float, container_id: str, pod_ip: str | None = None
) -> Obj:
    now = rfc3339(started)
    conditions = [
        _condition("PodReadyToStartContainers", True, now),
        _condition("Initialized", True, now),
        _condition("Ready", True, now),
        _condition("ContainersReady", True, now),
        _condition("PodScheduled", True, now),
    ]
    state = {"running": {"startedAt": now}}
    container_status = _container_status(container, state, container_id, True)
    return _base_status("Running", now, conditions, container_status, pod_ip)


@dataclass(frozen=True)
class Outcome:
    exit_code: int
    reason: str  # container terminated reason
    message: str  # termination message
    pod_reason: str | None = None  # pod.status.reason (DeadlineExceeded, NotKslimRunner, ...)


def terminated_status(
    container: Mapping[str, Any],
    outcome: Outcome,
    *,
    started: float,
    finished: float,
    container_id: str | None,
    pod_ip: str | None = None,
) -> Obj:
    start, end = rfc3339(started), rfc3339(finished)
    phase = "Succeeded" if outcome.exit_code == 0 else "Failed"
    conditions = [
        _condition("PodReadyToStartContainers", False, end),
        _condition("Initialized", True, start),
        _condition("Ready", False, end, "PodCompleted"),
        _condition("ContainersReady", False, end, "PodCompleted"),
        _condition("PodScheduled", True, start),
    ]
    terminated: Obj = {
        "exitCode": outcome.exit_code,
        "reason": outcome.reason,
        "startedAt": start,
        "finishedAt": end,
    }
    if outcome.message:
        terminated["message"] = outcome.message
    if container_id:
        terminated["containerID"] = container_id
    status = _base_status(
        phase,
        start,
        conditions,
        _container_status(container, {"terminated": terminated}, container_id, False),
        pod_ip,
    )
    if outcome.pod_reason:
        status["reason"] = outcome.pod_reason
        status["message"] = outcome.message
    return status


def rejected_outcome(rejection: PodRejected) -> Outcome:
    return Outcome(START_ERROR_EXIT_CODE, rejection.reason, rejection.message, pod_reason=rejection.reason)


def exit_code_of(returncode: int) -> int:
    """Popen's -N (killed by signal N) as a container runtime reports it: 128 + N."""
    return 128 - returncode if returncode < 0 else returncode


def read_termination_message(path: Path) -> str:
    try:
        with path.open("rb") as handle:
            return handle.read(TERMINATION_MESSAGE_MAX_BYTES).decode("utf-8", errors="replace")
    except OSError:
        return ""


# =============================================================================================
# Pure parts: the Node
# =============================================================================================


def machine_capacity(cpus: int | None, memory: str | None, gpus: int) -> dict[str, str]:
    if memory is None:
        memory = "8Gi"
        with contextlib.suppress(OSError):
            for line in Path("/proc/meminfo").read_text().splitlines():
                if line.startswith("MemTotal:"):
                    memory = f"{line.split()[1]}Ki"
    return {
        "cpu": str(cpus or os.cpu_count() or 1),
        "memory": memory,
        "pods": "110",
        "ephemeral-storage": f"{shutil.disk_usage('/').total // 1024}Ki",
        GPU_RESOURCE: str(gpus),
    }


def node_labels(name: str, gpu_compute_major: int) -> dict[str, str]:
    arch = {"x86_64": "amd64", "aarch64": "arm64"}.get(platform.machine(), platform.machine())
    return {
        "kubernetes.io/hostname": name,
        "kubernetes.io/os": "linux",
        "kubernetes.io/arch": arch,
        "node.kubernetes.io/instance-type": "kslim-local",
        "nvidia.com/gpu.present": "true",
        "nvidia.com/gpu.compute.major": str(gpu_compute_major),
    }


def node_status(capacity: Mapping[str, str], port: int, *, ready: bool, now: str) -> Obj:
    message = "kslim local kubelet is posting ready status" if ready else "kslim local kubelet stopped"
    conditions = [
        {
            **_condition(kind, False, now, f"KubeletHas{word}", f"kubelet has {word.lower()}"),
            "lastHeartbeatTime": now,
        }
        for kind, word in (
            ("MemoryPressure", "SufficientMemory"),
            ("DiskPressure", "NoDiskPressure"),
            ("PIDPressure", "SufficientPID"),
        )
    ]
    ready_condition = _condition("Ready", ready, now, "KubeletReady" if ready else "KubeletStopped", message)
    conditions.append({**ready_condition, "lastHeartbeatTime": now})
    return {
        "capacity": dict(capacity),
        "allocatable": dict(capacity),
        "conditions": conditions,
        "addresses": [{"type": "InternalIP", "address": NODE_IP}],
        "daemonEndpoints": {"kubeletEndpoint": {"Port": port}},
        "nodeInfo": {
            "machineID": "",
            "systemUUID": "",
            "bootID": "",
            "kernelVersion": platform.release(),
            "osImage": "kslim local kubelet (processes, no containers)",
            "containerRuntimeVersion": "kslim-local://0.1",
            "kubeletVersion": "v0.0.0-kslim-local",
            "kubeProxyVersion": "",
            "operatingSystem": "linux",
            "architecture": node_labels("", 0)["kubernetes.io/arch"],
        },
    }


# =============================================================================================
# A small API client (JSON over HTTPS from a kubeconfig; watch streams)
# =============================================================================================


class ApiError(Exception):
    def __init__(self, status: int, message: str) -> None:
        super().__init__(f"{status}: {message}")
        self.status = status


@dataclass(frozen=True)
class Credentials:
    server: str
    context: ssl.SSLContext
    token: str | None = None


def _file_or_data(entry: Mapping[str, Any], key: str, scratch: Path) -> Path | None:
    if entry.get(f"{key}-data"):
        path = scratch / f"{key}.pem"
        path.write_bytes(base64.b64decode(entry[f"{key}-data"]))
        path.chmod(0o600)
        return path
    return Path(entry[key]) if entry.get(key) else None


def load_credentials(kubeconfig: Path, scratch: Path) -> Credentials:
    """Server, TLS context and token of the kubeconfig's current context (certs or token)."""
    config = yaml.safe_load(kubeconfig.read_text())
    context_name = config.get("current-context")
    context = next(c["context"] for c in config["contexts"] if c["name"] == context_name)
    cluster = next(c["cluster"] for c in config["clusters"] if c["name"] == context["cluster"])
    user: dict[str, Any] = next(
        (u["user"] for u in config.get("users") or [] if u["name"] == context.get("user")), {}
    )
    scratch.mkdir(parents=True, exist_ok=True)
    ca = _file_or_data(cluster, "certificate-authority", scratch)
    tls = ssl.create_default_context(cafile=str(ca) if ca else None)
    if cluster.get("insecure-skip-tls-verify"):
        tls.check_hostname, tls.verify_mode = False, ssl.CERT_NONE
    cert = _file_or_data(user, "client-certificate", scratch)
    key = _file_or_data(user, "client-key", scratch)
    if cert and key:
        tls.load_cert_chain(str(cert), str(key))
    token = user.get("token") or (
        Path(user["tokenFile"]).read_text().strip() if user.get("tokenFile") else None
    )
    return Credentials(server=str(cluster["server"]).rstrip("/"), context=tls, token=token)


class Api:
    def __init__(self, credentials: Credentials) -> None:
        self.credentials = credentials

    def _open(
        self,
        method: str,
        path: str,
        body: Obj | None,
        content_type: str,
        query: Mapping[str, str],
        timeout: float,
    ) -> Any:
        url = self.credentials.server + path + (f"?{urllib.parse.urlencode(query)}" if query else "")
        data = json.dumps(body).encode() if body is not None else None
        request = urllib.request.Request(url, data=data, method=method)
        request.add_header("Accept", "application/json")
        request.add_header("User-Agent", "kslim-local-kubelet")
        if data is not None:
            request.add_header("Content-Type", content_type)
        if self.credentials.token:
            request.add_header("Authorization", f"Bearer {self.credentials.token}")
        try:
            return urllib.request.urlopen(request, context=self.credentials.context, timeout=timeout)
        except urllib.error.HTTPError as error:
            text = error.read().decode(errors="replace")
            with contextlib.suppress(ValueError):
                text = json.loads(text).get("message", text)
            raise ApiError(error.code, text) from None

    def call(
        self,
        method: str,
        path: str,
        body: Obj | None = None,
        *,
        content_type: str = "application/json",
        query: Mapping[str, str] | None = None,
    ) -> Obj:
        with self._open(method, path, body, content_type, query or {}, REQUEST_TIMEOUT_SECONDS) as response:
            raw = response.read()
        return dict(json.loads(raw)) if raw else {}

    def get(self, path: str, **query: str) -> Obj:
        return self.call("GET", path, query=query)

    def merge_patch(self, path: str, body: Obj) -> Obj:
        return self.call("PATCH", path, body, content_type="application/merge-patch+json")

    def watch(self, path: str, resource_version: str, **query: str) -> Iterator[Obj]:
        """Watch events (dicts with type and object) until the server ends the stream."""
        params = {
            **query,
            "watch": "true",
            "resourceVersion": resource_version,
            "allowWatchBookmarks": "true",
            "timeoutSeconds": str(WATCH_TIMEOUT_SECONDS),
        }
        with self._open("GET", path, None, "", params, WATCH_TIMEOUT_SECONDS + 30) as response:
            for line in response:
                if line.strip():
                    yield dict(json.loads(line))


def _version(obj: Mapping[str, Any]) -> int:
    """An object's resourceVersion as a number (etcd revisions; opaque to clients in general, but
    this test tool only talks to its own control plane)."""
    text = str((obj.get("metadata") or {}).get("resourceVersion") or "0")
    return int(text) if text.isdigit() else 0


def pod_path(namespace: str, name: str, sub: str = "") -> str:
    return f"/api/v1/namespaces/{namespace}/pods/{name}" + (f"/{sub}" if sub else "")


# =============================================================================================
# Container logs: storage and the HTTPS server
# =============================================================================================


class ContainerLog:
    """A container's log lines with their times (in memory, and copied to a file for humans)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.entries: list[LogEntry] = []
        self.finished = False
        self._changed = threading.Condition()
        path.parent.mkdir(parents=True, exist_ok=True)
        self._file = path.open("ab")

    def append(self, line: bytes) -> None:
        entry = LogEntry(time.time(), line.rstrip(b"\r\n"))
        with self._changed:
            self.entries.append(entry)
            self._file.write(entry.line + b"\n")
            self._file.flush()
            self._changed.notify_all()

    def finish(self) -> None:
        with self._changed:
            self.finished = True
            self._file.close()
            self._changed.notify_all()

    def snapshot(self) -> list[LogEntry]:
        with self._changed:
            return list(self.entries)

    def wait_beyond(self, count: int, timeout: float) -> tuple[list[LogEntry], bool]:
        """Entries after the first `count` (waiting up to `timeout` for some), and whether it ended."""
        with self._changed:
            if len(self.entries) <= count and not self.finished:
                self._changed.wait(timeout)
            return list(self.entries[count:]), self.finished


LogFinder = Callable[[str, str, str], "ContainerLog | str"]


def make_log_handler(find: LogFinder) -> type[http.server.BaseHTTPRequestHandler]:
    """A request handler serving /containerLogs/{ns}/{pod}/{container}; `find` returns the log,
    or a message why there is none."""

    class Handler(http.server.BaseHTTPRequestHandler):
        server_version = "kslim-local-kubelet"

        def do_GET(self) -> None:
            url = urllib.parse.urlsplit(self.path)
            parts = url.path.strip("/").split("/")
            if url.path == "/healthz":
                self._reply(200, b"ok")
                return
            if len(parts) != 4 or parts[0] != "containerLogs":
                self._reply(404, b"the kslim local kubelet only serves /containerLogs/{ns}/{pod}/{container}")
                return
            try:
                query = parse_log_query(urllib.parse.parse_qs(url.query), time.time())
            except ValueError as error:
                self._reply(400, str(error).encode())
                return
            found = find(parts[1], parts[2], parts[3])
            if isinstance(found, str):
                self._reply(404 if "not found" in found else 400, found.encode())
                return
            if query.follow:
                self._follow(found, query)
            else:
                body = render_entries(
                    select_entries(found.snapshot(), tail_lines=query.tail_lines, since=query.since),
                    timestamps=query.timestamps,
                )
                self._reply(200, body[: query.limit_bytes] if query.limit_bytes is not None else body)

        def _reply(self, code: int, body: bytes) -> None:
            self.send_response(code)
            self.send_header("Content-Type", "text/plain; charset=utf-8")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def _follow(self, container_log: ContainerLog, query: LogQuery) -> None:
            """Stream until the container ends (HTTP/1.0: the body ends when the connection closes)."""
            self.send_response(200)
            self.send_header("Content-Type", "text/plain; charset=utf-8")
            self.end_headers()
            entries = container_log.snapshot()
            first = select_entries(entries, tail_lines=query.tail_lines, since=query.since)
            budget = query.limit_bytes
            seen, batch, finished = len(entries), first, False
            with contextlib.suppress(OSError):
                while True:
                    chunk = render_entries(batch, timestamps=query.timestamps)
                    if budget is not None:
                        chunk, budget = chunk[:budget], budget - len(chunk[:budget])
                    self.wfile.write(chunk)
                    self.wfile.flush()
                    if finished or budget == 0:
                        return
                    batch, finished = container_log.wait_beyond(seen, timeout=1.0)
                    seen += len(batch)

        def log_message(self, format: str, *args: object) -> None:
            log.debug("log server: " + format, *args)

    return Handler


class LogServer:
    """HTTPS on 127.0.0.1 with a self-signed certificate (the API server does not verify it)."""

    def __init__(self, find: LogFinder, pki_dir: Path, port: int = 0) -> None:
        cert, key = self._certificate(pki_dir)
        self.httpd = http.server.ThreadingHTTPServer((NODE_IP, port), make_log_handler(find))
        self.httpd.daemon_threads = True
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(str(cert), str(key))
        # The handshake happens in the request's thread, so a stalled client blocks no one else.
        self.httpd.socket = context.wrap_socket(
            self.httpd.socket, server_side=True, do_handshake_on_connect=False
        )
        self.thread = threading.Thread(target=self.httpd.serve_forever, name="kubelet-logs", daemon=True)

    @property
    def port(self) -> int:
        return int(self.httpd.server_address[1])

    @staticmethod
    def _certificate(pki_dir: Path) -> tuple[Path, Path]:
        pki_dir.mkdir(parents=True, exist_ok=True)
        cert, key = pki_dir / "kubelet.crt", pki_dir / "kubelet.key"
        if not (cert.exists() and key.exists()):
            subprocess.run(
                ["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
                 "-keyout", str(key), "-out", str(cert), "-days", "365", "-subj", "/CN=kslim-local-kubelet",
                 "-addext", f"subjectAltName=IP:{NODE_IP},DNS:localhost"],
                check=True, capture_output=True,
            )  # fmt: skip
            key.chmod(0o600)
        return cert, key

    def start(self) -> None:
        self.thread.start()

    def stop(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


# =============================================================================================
# Running one pod
# =============================================================================================


def _die_with_thread_hook() -> Callable[[], None]:
    """preexec_fn: the child is SIGKILLed when the thread that started it ends (Linux), so no
    runner outlives its kubelet."""
    parent = os.getpid()
    prctl = ctypes.CDLL(None, use_errno=True).prctl if sys.platform.startswith("linux") else None

    def hook() -> None:
        if prctl is not None:
            prctl(PR_SET_PDEATHSIG, signal.SIGKILL)
        if os.getppid() != parent:
            os.kill(os.getpid(), signal.SIGKILL)

    return hook


PROBE_HOSTNAME = "kslim-probe"
PROBE_PEER, PROBE_PEER_IP = "kslim-probe-peer", "127.10.255.254"
#: Where the namespace tools are looked for (besides the kubelet's PATH).
TOOL_PATH = os.pathsep.join(
    [os.environ.get("PATH", ""), "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"]
)
_isolation_lock = threading.Lock()
_isolation_probed: list[Isolation | None] = []  # the answer, once probed


def probe_isolation(candidates: Sequence[Isolation], work: Path) -> Isolation | None:
    """The first candidate under which a process (this Python) sees the hostname we set and
    resolves a name from the hosts file we mount; None when none does."""
    hosts = work / "probe-hosts"
    write_in_place(hosts, f"{MANAGED_HOSTS_HEADER}{PROBE_PEER_IP}\t{PROBE_PEER}\n")
    code = f"import socket; print(socket.gethostname(), socket.gethostbyname({PROBE_PEER!r}))"
    for candidate in candidates:
        argv = candidate.argv(hosts, PROBE_HOSTNAME, [sys.executable, "-c", code])
        try:
            done = subprocess.run(argv, capture_output=True, text=True, timeout=30, check=False)
        except (OSError, subprocess.TimeoutExpired) as error:
            log.debug("pod isolation %s: %s", candidate.name, error)
            continue
        if done.returncode == 0 and done.stdout.split() == [PROBE_HOSTNAME, PROBE_PEER_IP]:
            return candidate
        log.debug(
            "pod isolation %s: exit %d, %s",
            candidate.name,
            done.returncode,
            (done.stdout + done.stderr)[-500:],
        )
    return None


def pod_isolation() -> Isolation | None:
    """How pods get their own /etc/hosts and hostname here, probed once per process; when nothing
    works, says once that pod names do not resolve (pods still run, as plain processes)."""
    with _isolation_lock:
        if not _isolation_probed:
            found: Isolation | None = None
            tools = {tool: shutil.which(tool, path=TOOL_PATH) for tool in NAMESPACE_TOOLS}
            if sys.platform.startswith("linux") and all(tools.values()):
                candidates = isolation_candidates(os.geteuid(), os.getegid(), cast(dict[str, str], tools))
                with tempfile.TemporaryDirectory(prefix="kslim-kubelet-probe-") as work:
                    found = probe_isolation(candidates, Path(work))
            if found is None:
                missing = sorted(tool for tool, path in tools.items() if not path)
                log.warning(
                    "pods run without their own /etc/hosts and hostname: %s, so pod and headless Service "
                    "names do not resolve (each pod still gets its own IP; single-pod jobs are not affected)",
                    f"{', '.join(missing)} not found"
                    if missing
                    else "neither `unshare --mount --uts` (as root) nor a user namespace works here",
                )
            else:
                log.info("pods get their own /etc/hosts and hostname (%s)", found.name)
            _isolation_probed.append(found)
        return _isolation_probed[0]


@dataclass(frozen=True)
class LaunchPlan:
    argv: list[str]  # the runner's command line
    command: list[str]  # what is started: argv, inside the pod's namespaces when there are any
    env: dict[str, str]
    cwd: Path
    termination_file: Path
    fallback_to_logs: bool
    deadline_seconds: float | None


class PodWorker(threading.Thread):
    """Runs one pod from bound to finished, then (when it is deleted) finishes the deletion."""

    def __init__(self, kubelet: LocalKubelet, pod: Obj) -> None:
        meta = pod["metadata"]
        super().__init__(name=f"pod-{meta['namespace']}-{meta['name']}", daemon=True)
        self.kubelet = kubelet
        self.pod = pod
        self.namespace, self.pod_name, self.uid = meta["namespace"], meta["name"], meta["uid"]
        self.pod_dir = kubelet.config.root / "pods" / self.uid
        self.container: Obj = {}
        self.log: ContainerLog | None = None
        self.process: subprocess.Popen[bytes] | None = None
        self.stop_requested = threading.Event()
        self.grace_seconds = MAX_GRACE_SECONDS
        self.stop_reason: str | None = None  # pod.status.reason when the kubelet itself stops it
        self.vanished = False  # the pod object is gone: write nothing more
        self.done = threading.Event()
        self.finalized = False
        self.pod_ip: str | None = None  # from the kubelet's pool, while the pod runs
        self.hosts_path: Path | None = None  # its /etc/hosts, when it runs in its own namespaces
        self.hosts_text = ""  # what was last written there

    # ---- called from the kubelet's threads

    def request_stop(self, grace_seconds: float, reason: str | None = None) -> None:
        """Stop the process (SIGTERM, SIGKILL after the grace period); `reason` for pod.status.reason."""
        self.grace_seconds = min(max(grace_seconds, 0.0), MAX_GRACE_SECONDS)
        self.stop_reason = reason
        self.stop_requested.set()

    def vanish(self) -> None:
        self.vanished = True
        self.request_stop(0.0)

    # ---- the thread

    def run(self) -> None:
        try:
            self._run()
        except Exception as error:  # never leave a pod hanging: say what broke
            log.exception("pod %s/%s: unexpected error", self.namespace, self.pod_name)
            now = time.time()
            self._write_status(
                terminated_status(
                    self.container or {"name": "unknown"},
                    Outcome(
                        START_ERROR_EXIT_CODE,
                        REASON_START,
                        f"the local kubelet failed: {error}",
                        REASON_START,
                    ),
                    started=now,
                    finished=now,
                    container_id=None,
                    pod_ip=self.pod_ip,
                )
            )
        finally:
            self.done.set()
            if self.pod_ip is not None:
                self.kubelet.pod_ips.release(self.pod_ip)
            self.kubelet.worker_done(self)

    def _run(self) -> None:
        started = time.time()
        try:
            plan = self._prepare()
        except PodRejected as rejection:
            log.warning("pod %s/%s refused: %s", self.namespace, self.pod_name, rejection.message)
            self.kubelet.post_event(self.pod, "Warning", rejection.reason, rejection.message)
            self._write_status(
                terminated_status(
                    self.container or {"name": "unknown"},
                    rejected_outcome(rejection),
                    started=started,
                    finished=time.time(),
                    container_id=None,
                    pod_ip=self.pod_ip,
                )
            )
            return
        if self.stop_requested.is_set():
            return
        self.log = ContainerLog(self.pod_dir / "logs" / f"{self.container['name']}.log")
        try:
            self.process = subprocess.Popen(
                plan.command,
                env=plan.env,
                cwd=plan.cwd,
                stdin=subprocess.DEVNULL,
                stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT,
                start_new_session=True,
                preexec_fn=_die_with_thread_hook(),
            )
        except OSError as error:
            self.log.finish()
            outcome = Outcome(
                START_ERROR_EXIT_CODE, REASON_START, f"cannot start {plan.argv[0]}: {error}", REASON_START
            )
            self._write_status(
                terminated_status(
                    self.container,
                    outcome,
                    started=started,
                    finished=time.time(),
                    container_id=None,
                    pod_ip=self.pod_ip,
                )
            )
            return
        container_id = f"kslim-local://{self.uid}-{self.process.pid}"
        started = time.time()
        reader = threading.Thread(target=self._read_output, name=f"{self.name}-log", daemon=True)
        reader.start()
        log.info(
            "pod %s/%s: started %s (pid %d, pod IP %s%s)",
            self.namespace,
            self.pod_name,
            shlex.join(plan.argv),
            self.process.pid,
            self.pod_ip,
            "" if self.hosts_path else ", host's /etc/hosts and hostname",
        )
        self._write_status(
            running_status(self.container, started=started, container_id=container_id, pod_ip=self.pod_ip)
        )
        self.kubelet.post_event(self.pod, "Normal", "Started", f"Started container {self.container['name']}")
        pod_reason = self._wait(plan.deadline_seconds)
        reader.join(timeout=10)
        self.log.finish()
        outcome = self._outcome(plan, pod_reason)
        log.info(
            "pod %s/%s: exited %d (%s)", self.namespace, self.pod_name, outcome.exit_code, outcome.reason
        )
        self._write_status(
            terminated_status(
                self.container,
                outcome,
                started=started,
                finished=time.time(),
                container_id=container_id,
                pod_ip=self.pod_ip,
            )
        )

    def _prepare(self) -> LaunchPlan:
        cfg = self.kubelet.config
        self.container = check_pod_supported(self.pod)
        args = runner_args(self.container, cfg.runner_images)
        dirs = volume_dirs(self.pod, self.pod_dir, cfg.pvc_root)
        termination_file = self.pod_dir / "termination-log"
        paths = mount_paths(self.container, dirs, termination_file)
        self._materialize(dirs, paths)
        self.pod_ip = self.kubelet.pod_ips.allocate(self.uid)
        hostname = pod_hostname(self.pod)
        base = {
            "PATH": f"{cfg.kslim.parent}:/usr/local/bin:/usr/bin:/bin",
            "HOSTNAME": hostname,
            "LANG": "C.UTF-8",
            **service_env(self.kubelet.api.credentials.server),
        }
        env = container_env(
            self.container,
            self.pod,
            paths,
            base=base,
            pvc_root=cfg.pvc_root,
            node_name=cfg.node_name,
            lookup_key=lambda kind, name, key: self.kubelet.lookup_key(self.namespace, kind, name, key),
            pod_ip=self.pod_ip,
        )
        argv = [str(cfg.kslim), RUNNER_ENTRYPOINT[1], *[paths.rewrite(expand(a, env)) for a in args]]
        command = argv
        if self.kubelet.isolation is not None:
            self.hosts_path = self.pod_dir / HOSTS_FILE
            self.kubelet.start_hosts(self)
            command = self.kubelet.isolation.argv(self.hosts_path, hostname, argv)
        working_dir = self.container.get("workingDir")
        cwd = paths.local(working_dir) if working_dir else None
        deadline = (self.pod.get("spec") or {}).get("activeDeadlineSeconds")
        return LaunchPlan(
            argv=argv,
            command=command,
            env=env,
            cwd=cwd or self.pod_dir,
            termination_file=termination_file,
            fallback_to_logs=self.container.get("terminationMessagePolicy") == "FallbackToLogsOnError",
            deadline_seconds=float(deadline) if deadline else None,
        )

    def _materialize(self, dirs: Mapping[str, Path], paths: PathMap) -> None:
        """Create the volume folders, write configMap/secret files, create subPath folders."""
        self.pod_dir.mkdir(parents=True, exist_ok=True)
        (self.pod_dir / "termination-log").write_bytes(b"")
        for volume in (self.pod.get("spec") or {}).get("volumes") or []:
            target = dirs[volume["name"]]
            target.mkdir(parents=True, exist_ok=True)
            for kind in ("configMap", "secret"):
                if kind in volume:
                    self._write_keys(kind, volume[kind], target)
        for _, local in paths.entries:
            if local != self.pod_dir / "termination-log" and not local.exists():
                local.mkdir(parents=True, exist_ok=True)  # subPath folders, as the kubelet makes them

    def _write_keys(self, kind: str, source: Mapping[str, Any], target: Path) -> None:
        name = str(source.get("name") if kind == "configMap" else source.get("secretName"))
        data = self.kubelet.wait_for_keys(self.namespace, kind, name, optional=bool(source.get("optional")))
        items = source.get("items") or [{"key": k, "path": k} for k in data]
        for item in items:
            if item["key"] not in data:
                if source.get("optional"):
                    continue
                raise PodRejected(REASON_CONFIG, f"key {item['key']!r} not found in {kind} {name!r}")
            relative = Path(str(item["path"]))
            if relative.is_absolute() or ".." in relative.parts:
                raise PodRejected(
                    REASON_CONFIG, f"{kind} {name!r}: item path {item['path']!r} leaves the volume"
                )
            (target / relative).parent.mkdir(parents=True, exist_ok=True)
            (target / relative).write_bytes(data[item["key"]])

    def _read_output(self) -> None:
        assert self.process is not None and self.process.stdout is not None and self.log is not None
        for line in self.process.stdout:
            self.log.append(line)

    def _wait(self, deadline_seconds: float | None) -> str | None:
        """Wait for the process; stop it on request or at the deadline. Returns a pod reason."""
        assert self.process is not None
        deadline = time.monotonic() + deadline_seconds if deadline_seconds else None
        while self.process.poll() is None:
            if self.stop_requested.wait(timeout=0.2):
                self._terminate(self.grace_seconds)
                return self.stop_reason
            if deadline is not None and time.monotonic() >= deadline:
                self._terminate(MAX_GRACE_SECONDS)
                return "DeadlineExceeded"
        return None

    def _terminate(self, grace_seconds: float) -> None:
        assert self.process is not None
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.process.pid, signal.SIGTERM)
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.process.wait(timeout=grace_seconds)
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.process.pid, signal.SIGKILL)  # anything left in its group
        self.process.wait()

    def _outcome(self, plan: LaunchPlan, pod_reason: str | None) -> Outcome:
        assert self.process is not None and self.process.returncode is not None and self.log is not None
        code = exit_code_of(self.process.returncode)
        message = read_termination_message(plan.termination_file)
        if not message.strip() and plan.fallback_to_logs and code != 0:
            message = fallback_message(self.log.snapshot())
        reason = "Completed" if code == 0 else "Error"
        if pod_reason == "DeadlineExceeded":
            message = message or "Pod was active on the node longer than the specified deadline"
        elif pod_reason == REASON_SHUTDOWN:
            message = message or "the local kubelet stopped while this pod ran"
        return Outcome(code, reason, message, pod_reason)

    def _write_status(self, status: Obj) -> None:
        if not self.vanished:
            self.kubelet.write_pod_status(self.namespace, self.pod_name, status)

    def write_hosts(self, text: str) -> None:
        """Its /etc/hosts, when that changed (the kubelet calls this under its network lock)."""
        if self.hosts_path is None or text == self.hosts_text:
            return
        try:
            write_in_place(self.hosts_path, text)
        except OSError as error:  # its folder is being removed
            log.debug("pod %s/%s: hosts file not written: %s", self.namespace, self.pod_name, error)
            return
        self.hosts_text = text

    # ---- deletion

    def cleanup(self) -> None:
        """Remove the pod's folder (emptyDirs, configMap copies, logs); claims stay."""
        shutil.rmtree(self.pod_dir, ignore_errors=True)


# =============================================================================================
# The kubelet
# =============================================================================================


@dataclass
class KubeletConfig:
    kubeconfig: Path
    root: Path
    node_name: str = NODE_NAME
    port: int = 0
    kslim: Path = field(default_factory=lambda: Path(sys.executable).parent / "kslim")
    runner_images: tuple[str, ...] = DEFAULT_RUNNER_IMAGES
    gpus: int = DEFAULT_GPUS
    gpu_compute_major: int = DEFAULT_GPU_COMPUTE_MAJOR
    cpus: int | None = None
    memory: str | None = None
    config_wait_seconds: float = 20.0
    pod_cidr: str = POD_CIDR
    #: Run each pod in its own mount+UTS namespaces (own /etc/hosts and hostname) when possible.
    isolate_pods: bool = True

    @property
    def pvc_root(self) -> Path:
        return self.root / "pvc"


class LocalKubelet:
    """Scheduler + kubelet for one Node of the test control plane (see the module docstring)."""

    def __init__(self, config: KubeletConfig) -> None:
        config.root = config.root.resolve()
        self.config = config
        self.api = Api(load_credentials(config.kubeconfig, config.root / "pki" / "client"))
        self.capacity = machine_capacity(config.cpus, config.memory, config.gpus)
        self.labels = node_labels(config.node_name, config.gpu_compute_major)
        self.allocatable = {k: parse_quantity(v) for k, v in self.capacity.items()}
        self.workers: dict[str, PodWorker] = {}
        self.lock = threading.RLock()
        self.stopping = threading.Event()
        self.unschedulable_seen: dict[str, str] = {}
        self.logs = LogServer(self.find_log, config.root / "pki", config.port)
        self.threads: list[threading.Thread] = []
        # The pod network: IPs, and what cluster DNS would answer (from the pods and Services).
        self.pod_ips = PodIPPool(config.pod_cidr)
        self.isolation: Isolation | None = None
        self.net_lock = threading.Lock()  # taken after self.lock, never before it
        self.known_pods: dict[str, Obj] = {}  # uid -> pod, every namespace (watch + our own writes)
        self.services: dict[tuple[str, str], Obj] = {}  # (namespace, name) -> headless Service

    # ---- lifecycle

    def start(self) -> LocalKubelet:
        if not os.access(self.config.kslim, os.X_OK):
            raise RuntimeError(f"the runner entry point {self.config.kslim} is missing: run `make venv`")
        self.config.pvc_root.mkdir(parents=True, exist_ok=True)
        self.isolation = pod_isolation() if self.config.isolate_pods else None
        self.logs.start()
        self.register_node(ready=True)
        self.sync_services()
        for target, name in (
            (self._watch_loop, "kubelet-watch"),
            (self._resync_loop, "kubelet-resync"),
            (self._heartbeat_loop, "kubelet-heartbeat"),
        ):
            thread = threading.Thread(target=target, name=name, daemon=True)
            thread.start()
            self.threads.append(thread)
        log.info("node %s ready; logs on https://%s:%d", self.config.node_name, NODE_IP, self.logs.port)
        return self

    def stop(self, timeout: float = 15.0) -> None:
        """Stop every runner (their pods end Failed, reason NodeShutdown) and mark the Node NotReady."""
        self.stopping.set()
        with self.lock:
            workers = [w for w in self.workers.values() if not w.done.is_set()]
        for worker in workers:
            worker.request_stop(2.0, REASON_SHUTDOWN)
        for worker in workers:
            worker.join(timeout)
        with contextlib.suppress(Exception):
            self.register_node(ready=False)
        self.logs.stop()

    def __enter__(self) -> LocalKubelet:
        return self.start()

    def __exit__(self, *_: object) -> None:
        self.stop()

    # ---- the Node

    def register_node(self, ready: bool) -> None:
        name = self.config.node_name
        body = {"apiVersion": "v1", "kind": "Node", "metadata": {"name": name, "labels": self.labels}}
        try:
            self.api.call("POST", "/api/v1/nodes", body)
        except ApiError as error:
            if error.status != 409:
                raise
            self.api.merge_patch(
                f"/api/v1/nodes/{name}",
                {"metadata": {"labels": self.labels}, "spec": {"unschedulable": None}},
            )
        status = node_status(self.capacity, self.logs.port, ready=ready, now=rfc3339(time.time()))
        self.api.merge_patch(f"/api/v1/nodes/{name}/status", {"status": status})

    def _heartbeat_loop(self) -> None:
        while not self.stopping.wait(HEARTBEAT_SECONDS):
            try:
                self.register_node(ready=True)
            except (ApiError, OSError) as error:
                log.warning("node heartbeat failed: %s", error)

    # ---- watching pods

    def _watch_loop(self) -> None:
        while not self.stopping.is_set():
            try:
                listed = self.api.get("/api/v1/pods")
                self.remember_pods(listed.get("items") or [])
                for pod in listed.get("items") or []:
                    self.handle("SYNC", pod)
                self.refresh_hosts()
                version = str(listed["metadata"]["resourceVersion"])
                while not self.stopping.is_set():
                    for event in self.api.watch("/api/v1/pods", version):
                        if event["type"] == "ERROR":
                            raise ApiError(int(event["object"].get("code") or 500), str(event["object"]))
                        version = str(event["object"]["metadata"]["resourceVersion"])
                        if event["type"] != "BOOKMARK":
                            self.remember_pod(event["type"], event["object"])
                            self.handle(event["type"], event["object"])
                            self.refresh_hosts()
            except (ApiError, OSError, ValueError) as error:
                if not self.stopping.is_set():
                    log.info("pod watch restarts (%s)", error)
                    self.stopping.wait(1.0)

    def _resync_loop(self) -> None:
        """Retry pods that did not fit (a scheduler retries too); reread the headless Services."""
        while not self.stopping.wait(RESYNC_SECONDS):
            try:
                pending = self.api.get("/api/v1/pods", fieldSelector="spec.nodeName=")
            except (ApiError, OSError) as error:
                log.warning("resync failed: %s", error)
                continue
            for pod in pending.get("items") or []:
                self.handle("SYNC", pod)
            self.sync_services()
            self.refresh_hosts()

    def handle(self, kind: str, pod: Obj) -> None:
        """One pod event: schedule it, start it, stop it, or finish its deletion."""
        try:
            with self.lock:
                self._handle(kind, pod)
        except Exception:
            meta = pod.get("metadata") or {}
            log.exception("pod %s/%s: handling %s failed", meta.get("namespace"), meta.get("name"), kind)

    def _handle(self, kind: str, pod: Obj) -> None:
        meta, spec = pod["metadata"], pod.get("spec") or {}
        uid, node = meta["uid"], spec.get("nodeName")
        if not node:
            if kind != "DELETED" and not meta.get("deletionTimestamp"):
                self._schedule(pod)
            return
        if node != self.config.node_name or self.stopping.is_set():
            return
        worker = self.workers.get(uid)
        if kind == "DELETED":
            self.unschedulable_seen.pop(uid, None)
            if worker is not None:
                worker.vanish()
                self.workers.pop(uid, None)
                if worker.done.is_set():
                    worker.cleanup()
            return
        deleting = bool(meta.get("deletionTimestamp"))
        if worker is None:
            self._adopt(pod, deleting)
        elif deleting:
            if worker.done.is_set():
                self._finalize(worker)
            else:
                worker.request_stop(float(meta.get("deletionGracePeriodSeconds") or 0))

    def _adopt(self, pod: Obj, deleting: bool) -> None:
        """A pod bound to this Node that no worker runs: start it, or settle what a previous
        kubelet left behind."""
        meta, status = pod["metadata"], pod.get("status") or {}
        phase = status.get("phase") or "Pending"
        if phase in ("Succeeded", "Failed"):
            if deleting:
                self._delete_now(meta["namespace"], meta["name"])
            return
        started = any("running" in (cs.get("state") or {}) for cs in status.get("containerStatuses") or [])
        if started:  # it ran under a kubelet process that is gone, and its runner with it
            self._mark_lost(pod)
            if deleting:
                self._delete_now(meta["namespace"], meta["name"])
            return
        if deleting:
            self._delete_now(meta["namespace"], meta["name"])
            return
        worker = PodWorker(self, pod)
        self.workers[meta["uid"]] = worker
        worker.start()

    def worker_done(self, worker: PodWorker) -> None:
        """Called by a worker when its process has ended and its status is written."""
        with self.lock:
            if worker.vanished:
                worker.cleanup()
            elif worker.stop_requested.is_set() and not self.stopping.is_set():
                self._finalize(worker)

    def _finalize(self, worker: PodWorker) -> None:
        if worker.finalized:
            return
        worker.finalized = True
        self._delete_now(worker.namespace, worker.pod_name)

    def _delete_now(self, namespace: str, name: str) -> None:
        """Finish a graceful deletion (what a kubelet does once the containers are gone)."""
        body = {"apiVersion": "v1", "kind": "DeleteOptions", "gracePeriodSeconds": 0}
        try:
            self.api.call("DELETE", pod_path(namespace, name), body)
        except ApiError as error:
            if error.status != 404:
                raise

    def _mark_lost(self, pod: Obj) -> None:
        container = (pod.get("spec") or {}).get("containers", [{"name": "unknown"}])[0]
        now = time.time()
        outcome = Outcome(
            START_ERROR_EXIT_CODE + 9,
            REASON_LOST,
            "the local kubelet restarted while this pod ran; its process is gone",
            REASON_LOST,
        )
        meta = pod["metadata"]
        self.write_pod_status(
            meta["namespace"],
            meta["name"],
            terminated_status(container, outcome, started=now, finished=now, container_id=None),
        )

    # ---- scheduling

    def _schedule(self, pod: Obj) -> None:
        meta, spec = pod["metadata"], pod.get("spec") or {}
        if (spec.get("schedulerName") or DEFAULT_SCHEDULER) != DEFAULT_SCHEDULER or spec.get(
            "schedulingGates"
        ):
            return
        if (pod.get("status") or {}).get("phase") not in (None, "Pending"):
            return
        reason = unschedulable_reason(pod, self.config.node_name, self.labels, self.allocatable)
        if reason is None:
            reason = self._missing_claims(meta["namespace"], pod_claims(pod))
        if reason is not None:
            self._report_unschedulable(pod, reason)
            return
        binding = {
            "apiVersion": "v1",
            "kind": "Binding",
            "metadata": {"name": meta["name"], "uid": meta["uid"]},
            "target": {"apiVersion": "v1", "kind": "Node", "name": self.config.node_name},
        }
        try:
            self.api.call("POST", pod_path(meta["namespace"], meta["name"], "binding"), binding)
        except ApiError as error:
            if error.status in (404, 409):  # deleted meanwhile, or bound already
                return
            raise
        self.unschedulable_seen.pop(meta["uid"], None)
        log.info("bound pod %s/%s to %s", meta["namespace"], meta["name"], self.config.node_name)

    def _missing_claims(self, namespace: str, claims: Sequence[str]) -> str | None:
        for claim in claims:
            try:
                self.api.get(f"/api/v1/namespaces/{namespace}/persistentvolumeclaims/{claim}")
            except ApiError as error:
                if error.status == 404:
                    return f'0/1 nodes are available: persistentvolumeclaim "{claim}" not found.'
                raise
        return None

    def _report_unschedulable(self, pod: Obj, message: str) -> None:
        meta = pod["metadata"]
        if self.unschedulable_seen.get(meta["uid"]) == message:
            return
        self.unschedulable_seen[meta["uid"]] = message
        condition = unschedulable_condition(message, rfc3339(time.time()))
        others = [
            c for c in (pod.get("status") or {}).get("conditions") or [] if c.get("type") != "PodScheduled"
        ]
        self.write_pod_status(
            meta["namespace"], meta["name"], {"phase": "Pending", "conditions": [*others, condition]}
        )
        self.post_event(pod, "Warning", "FailedScheduling", message)

    # ---- API helpers for workers

    def write_pod_status(self, namespace: str, name: str, status: Obj) -> None:
        try:
            written = self.api.merge_patch(pod_path(namespace, name, "status"), {"status": status})
        except ApiError as error:
            if error.status != 404:
                log.warning("pod %s/%s: status update failed: %s", namespace, name, error)
            return
        # Peers learn a new pod IP (or its end) now, not when the watch event comes back.
        if written.get("metadata"):
            self.remember_pod("MODIFIED", written)
            self.refresh_hosts()

    # ---- the pod network: each pod's /etc/hosts, from the pods and headless Services

    def remember_pods(self, pods: Sequence[Obj]) -> None:
        """A fresh list of every pod (the watch restarted)."""
        with self.net_lock:
            self.known_pods = {pod["metadata"]["uid"]: pod for pod in pods}

    def remember_pod(self, kind: str, pod: Obj) -> None:
        """One pod event; an object older than the one held is ignored."""
        uid = pod["metadata"]["uid"]
        with self.net_lock:
            if kind == "DELETED":
                self.known_pods.pop(uid, None)
                return
            held = self.known_pods.get(uid)
            if held is None or _version(pod) >= _version(held):
                self.known_pods[uid] = pod

    def sync_services(self, namespace: str | None = None) -> None:
        """Reread the headless Services with a selector (of one namespace, or all)."""
        path = f"/api/v1/namespaces/{namespace}/services" if namespace else "/api/v1/services"
        try:
            listed = self.api.get(path)
        except (ApiError, OSError) as error:
            log.warning("listing services failed: %s", error)
            return
        found = {
            (s["metadata"]["namespace"], s["metadata"]["name"]): s
            for s in listed.get("items") or []
            if is_headless(s)
        }
        with self.net_lock:
            kept = {k: v for k, v in self.services.items() if namespace is not None and k[0] != namespace}
            self.services = {**kept, **found}

    def start_hosts(self, worker: PodWorker) -> None:
        """A starting pod's /etc/hosts, from its namespace's Services as they are now."""
        self.sync_services(worker.namespace)
        with self.net_lock:
            worker.write_hosts(self._hosts_text(worker))

    def refresh_hosts(self) -> None:
        """Rewrite each running pod's /etc/hosts whose content changed (in place)."""
        if self.isolation is None:
            return
        with self.lock:
            workers = [w for w in self.workers.values() if w.hosts_path is not None and not w.done.is_set()]
        with self.net_lock:
            for worker in workers:
                worker.write_hosts(self._hosts_text(worker))

    def _hosts_text(self, worker: PodWorker) -> str:
        assert worker.pod_ip is not None
        return hosts_file(
            worker.pod, worker.pod_ip, list(self.services.values()), list(self.known_pods.values())
        )

    def lookup_key(self, namespace: str, kind: str, name: str, key: str) -> str | None:
        """One key of a ConfigMap/Secret (env valueFrom), None if it or the object is missing."""
        value = (self._read_keys(namespace, kind, name) or {}).get(key)
        return value.decode("utf-8", errors="replace") if value is not None else None

    def _read_keys(self, namespace: str, kind: str, name: str) -> dict[str, bytes] | None:
        resource = "configmaps" if kind == "configMap" else "secrets"
        try:
            obj = self.api.get(f"/api/v1/namespaces/{namespace}/{resource}/{name}")
        except ApiError as error:
            if error.status == 404:
                return None
            raise
        data = {k: str(v).encode() for k, v in (obj.get("data") or {}).items()}
        if kind == "secret":
            data = {k: base64.b64decode(v) for k, v in (obj.get("data") or {}).items()}
        data.update({k: base64.b64decode(v) for k, v in (obj.get("binaryData") or {}).items()})
        return data

    def wait_for_keys(self, namespace: str, kind: str, name: str, *, optional: bool) -> dict[str, bytes]:
        """A ConfigMap's/Secret's data; waits a little for one that is missing (a kubelet retries the
        mount), then PodRejected (this kubelet never leaves a pod hanging)."""
        deadline = time.monotonic() + self.config.config_wait_seconds
        while True:
            data = self._read_keys(namespace, kind, name)
            if data is not None:
                return data
            if optional:
                return {}
            if time.monotonic() >= deadline or self.stopping.is_set():
                raise PodRejected(REASON_CONFIG, f'{kind} "{name}" not found in namespace {namespace}')
            time.sleep(0.5)

    def post_event(self, pod: Obj, kind: str, reason: str, message: str) -> None:
        """Best effort, like a kubelet's events (`kubectl describe pod` shows them)."""
        meta = pod["metadata"]
        now = rfc3339(time.time())
        event = {
            "apiVersion": "v1",
            "kind": "Event",
            "metadata": {"generateName": f"{meta['name']}.", "namespace": meta["namespace"]},
            "involvedObject": {
                "apiVersion": "v1",
                "kind": "Pod",
                "name": meta["name"],
                "namespace": meta["namespace"],
                "uid": meta["uid"],
            },
            "reason": reason,
            "message": message[:1024],
            "type": kind,
            "source": {"component": "kslim-local-kubelet", "host": self.config.node_name},
            "firstTimestamp": now,
            "lastTimestamp": now,
            "count": 1,
        }
        with contextlib.suppress(ApiError, OSError):
            self.api.call("POST", f"/api/v1/namespaces/{meta['namespace']}/events", event)

    # ---- logs

    def find_log(self, namespace: str, pod: str, container: str) -> ContainerLog | str:
        with self.lock:
            worker = next(
                (w for w in self.workers.values() if w.namespace == namespace and w.pod_name == pod), None
            )
        if worker is None:
            return f'pod "{pod}" in namespace "{namespace}" not found on node {self.config.node_name}'
        if worker.container and worker.container.get("name") != container:
            return f'container "{container}" not found in pod "{pod}"'
        if worker.log is None:
            return f'container "{container}" in pod "{pod}" is waiting to start: ContainerCreating'
        return worker.log


# =============================================================================================
# Command line
# =============================================================================================


def _parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description="Local kubelet for the kslim test control plane: runs `kslim run` pods as processes."
    )
    parser.add_argument(
        "--kubeconfig", type=Path, required=True, help="admin kubeconfig of the control plane"
    )
    parser.add_argument(
        "--root", type=Path, required=True, help="folder for pods, claims (pvc/) and certificates"
    )
    parser.add_argument("--node-name", default=NODE_NAME, help=f"Node name (default {NODE_NAME})")
    parser.add_argument(
        "--port", type=int, default=0, help="log server port on 127.0.0.1 (default: a free one)"
    )
    parser.add_argument(
        "--kslim", type=Path, default=None, help="runner entry point (default: kslim next to python)"
    )
    parser.add_argument(
        "--runner-image",
        action="append",
        default=None,
        help="image repository accepted as the runner (repeatable; default kslim/runner, kslim-runner)",
    )
    parser.add_argument("--gpus", type=int, default=DEFAULT_GPUS, help="advertised nvidia.com/gpu")
    parser.add_argument("--cpus", type=int, default=None, help="advertised CPUs (default: this machine's)")
    parser.add_argument("--memory", default=None, help="advertised memory (default: this machine's)")
    parser.add_argument(
        "--pod-cidr", default=POD_CIDR, help=f"loopback network of the pod IPs (default {POD_CIDR})"
    )
    parser.add_argument(
        "--no-pod-namespaces",
        action="store_true",
        help="run pods without their own /etc/hosts and hostname (pod names then do not resolve)",
    )
    parser.add_argument("--log-level", default="INFO", choices=("DEBUG", "INFO", "WARNING", "ERROR"))
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    options = _parse_args(argv)
    logging.basicConfig(level=options.log_level, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    config = KubeletConfig(
        kubeconfig=options.kubeconfig,
        root=options.root,
        node_name=options.node_name,
        port=options.port,
        runner_images=tuple(options.runner_image or DEFAULT_RUNNER_IMAGES),
        gpus=options.gpus,
        cpus=options.cpus,
        memory=options.memory,
        pod_cidr=options.pod_cidr,
        isolate_pods=not options.no_pod_namespaces,
    )
    if options.kslim is not None:
        config.kslim = options.kslim.resolve()
    stop = threading.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda *_: stop.set())
    kubelet = LocalKubelet(config)
    try:
        kubelet.start()
    except (RuntimeError, ApiError, OSError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    print(
        f"kslim local kubelet: node {config.node_name}, logs on https://{NODE_IP}:{kubelet.logs.port}",
        flush=True,
    )
    stop.wait()
    kubelet.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
