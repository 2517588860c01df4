"""The local kubelet's pod network: a pod IP per pod, its own /etc/hosts and hostname, headless
Services resolving to pod IPs as cluster DNS would (tests/support/kubelet.py, "Pod network").

Pure parts first (hosts file, IP pool, env order, the wrapper's command line), then the namespace
wrapper for real (resolution, in-place refresh, death with the kubelet), then two pods of a
multi-node job on the test control plane meeting each other by name, as training-operator sets
them up (a stand-in runner, net_kslim.py, no Paddle)."""

from __future__ import annotations

import ipaddress
import json
import socket
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from kubernetes import client
from support.controlplane import ControlPlane
from support.kube import wait_for
from support.kubelet import (
    HOSTS_FILE,
    NODE_NAME,
    POD_CIDR,
    Isolation,
    KubeletConfig,
    LocalKubelet,
    Outcome,
    PathMap,
    PodIPPool,
    PodRejected,
    _die_with_thread_hook,
    container_env,
    headless_pods,
    hosts_file,
    isolation_candidates,
    pod_hostname,
    pod_isolation,
    running_status,
    terminated_status,
    write_in_place,
)

STAND_IN = Path(__file__).with_name("net_kslim.py")
JOB_LABEL, TYPE_LABEL, INDEX_LABEL = (
    "training.kubeflow.org/job-name",
    "training.kubeflow.org/replica-type",
    "training.kubeflow.org/replica-index",
)
CLAIM = "data"


# ---- pure parts


def _pod(
    name: str, ip: str | None = None, *, ready: bool = True, ns: str = "ns", **extra: Any
) -> dict[str, Any]:
    labels = extra.pop("labels", {JOB_LABEL: "job", TYPE_LABEL: "worker", INDEX_LABEL: name[-1]})
    status: dict[str, Any] = {"phase": extra.pop("phase", "Running")}
    if ip:
        status["podIP"] = ip
    status["conditions"] = [{"type": "Ready", "status": "True" if ready else "False"}]
    meta = {"name": name, "namespace": ns, "uid": f"uid-{name}", "labels": labels, **extra.pop("meta", {})}
    return {"metadata": meta, "spec": extra.pop("spec", {}), "status": status}


def _headless(name: str, index: str, ns: str = "ns", **spec: Any) -> dict[str, Any]:
    selector = {JOB_LABEL: "job", TYPE_LABEL: "worker", INDEX_LABEL: index}
    return {
        "metadata": {"name": name, "namespace": ns},
        "spec": {"clusterIP": "None", "selector": selector, **spec},
    }


def _lines(text: str) -> list[list[str]]:
    return [line.split() for line in text.splitlines() if line and not line.startswith("#")]


def test_hosts_file_has_the_kubelet_lines_and_each_headless_service() -> None:
    worker0, worker1 = _pod("job-worker-0", "127.10.0.7"), _pod("job-worker-1", "127.10.0.8")
    services = [_headless("job-worker-0", "0"), _headless("job-worker-1", "1")]
    text = hosts_file(worker1, "127.10.0.8", services, [worker0, worker1])
    assert text.startswith("# Kubernetes-managed hosts file.\n127.0.0.1\tlocalhost\n")
    lines = _lines(text)
    assert ["127.10.0.8", "job-worker-1"] in lines
    assert [
        "127.10.0.7",
        "job-worker-0.ns.svc.cluster.local",
        "job-worker-0.ns.svc",
        "job-worker-0.ns",
        "job-worker-0",
    ] in lines
    assert ["127.10.0.8", "job-worker-1.ns.svc.cluster.local", "job-worker-1.ns.svc", "job-worker-1.ns",
            "job-worker-1"] in lines  # fmt: skip


def test_hosts_file_without_peers_has_no_service_lines() -> None:
    lonely = _pod("job-worker-1", "127.10.0.8")
    text = hosts_file(lonely, "127.10.0.8", [_headless("job-worker-0", "0")], [lonely])
    assert "job-worker-0" not in text
    assert "Headless Services" not in text


def test_hostname_subdomain_and_host_aliases() -> None:
    pod = _pod(
        "p-0",
        "127.10.0.9",
        spec={
            "hostname": "h",
            "subdomain": "grp",
            "hostAliases": [{"ip": "10.1.1.1", "hostnames": ["a", "b"]}],
        },
    )
    other = _pod("q-0", "127.10.0.10", spec={"hostname": "q", "subdomain": "grp"})
    group = {
        "metadata": {"name": "grp", "namespace": "ns"},
        "spec": {"clusterIP": "None", "selector": {"g": "1"}},
    }
    pod["metadata"]["labels"] = other["metadata"]["labels"] = {"g": "1"}
    lines = _lines(hosts_file(pod, "127.10.0.9", [group], [pod, other]))
    assert ["127.10.0.9", "h.grp.ns.svc.cluster.local", "h"] in lines
    assert ["10.1.1.1", "a", "b"] in lines
    assert ["127.10.0.10", "q.grp.ns.svc.cluster.local", "q.grp.ns.svc", "q.grp.ns", "q.grp"] in lines
    assert ["127.10.0.10", "grp.ns.svc.cluster.local", "grp.ns.svc", "grp.ns", "grp"] in lines
    assert pod_hostname(pod) == "h"
    assert pod_hostname(_pod("x" * 62 + "-abc")) == "x" * 62


def test_which_pods_a_headless_service_resolves_to() -> None:
    pods = [
        _pod("a-0", "127.10.0.1"),
        _pod("b-0", "127.10.0.2", ready=False),
        _pod("c-0", "127.10.0.3", phase="Succeeded"),
        _pod("d-0"),  # no IP yet
        _pod("e-0", "127.10.0.5", meta={"deletionTimestamp": "2026-01-01T00:00:00Z"}),
        _pod("f-0", "127.10.0.6", ns="other"),
        _pod("g-0", "127.10.0.7", labels={"app": "else"}),
    ]
    service = _headless("s", "0")
    assert [p["metadata"]["name"] for p in headless_pods(service, pods)] == ["a-0"]
    publishing = _headless("s", "0", publishNotReadyAddresses=True)
    assert [p["metadata"]["name"] for p in headless_pods(publishing, pods)] == ["a-0", "b-0", "e-0"]
    clusterip = {**service, "spec": {**service["spec"], "clusterIP": "10.0.0.9"}}
    assert "10.0.0.9" not in hosts_file(pods[0], "127.10.0.1", [clusterip], pods)
    in_other = _pod("z-0", "127.10.0.20", ns="other")
    other_lines = _lines(hosts_file(in_other, "127.10.0.20", [service], pods))
    assert ["127.10.0.1", "s.ns.svc.cluster.local", "s.ns.svc", "s.ns"] in other_lines  # no short name


def test_pod_ip_pool_hands_out_loopback_addresses_round_robin() -> None:
    pool = PodIPPool("127.0.1.0/30", start=0)  # .1 and .2: 127.0.1.1 is reserved
    assert pool.allocate("a") == "127.0.1.2"
    with pytest.raises(PodRejected, match="no free pod IP"):
        pool.allocate("b")
    pool.release("127.0.1.2")
    assert pool.allocate("b") == "127.0.1.2"
    big = PodIPPool(POD_CIDR)
    first, second = big.allocate("a"), big.allocate("b")
    assert first != second
    assert ipaddress.IPv4Address(first) in ipaddress.IPv4Network(POD_CIDR)
    big.release(first)
    assert big.allocate("c") not in (first, second)  # not reused at once
    with pytest.raises(ValueError, match="loopback"):
        PodIPPool("10.0.0.0/24")


def test_pod_ip_is_expanded_into_later_variables_as_kubernetes_does() -> None:
    container = {
        "name": "paddle",
        "env": [
            {"name": "EARLY", "value": "$(POD_IP_DUMMY):1"},  # defined before: left as written
            {"name": "POD_IP_DUMMY", "valueFrom": {"fieldRef": {"fieldPath": "status.podIP"}}},
            {"name": "PADDLE_MASTER", "value": "$(POD_IP_DUMMY):36543"},
        ],
    }
    env = container_env(
        container,
        _pod("job-worker-0"),
        PathMap(),
        base={},
        pvc_root=Path("/p"),
        node_name="n",
        lookup_key=lambda *_: None,
        pod_ip="127.10.3.4",
    )
    assert env == {
        "EARLY": "$(POD_IP_DUMMY):1",
        "POD_IP_DUMMY": "127.10.3.4",
        "PADDLE_MASTER": "127.10.3.4:36543",
    }


def test_statuses_carry_the_pod_ip_and_a_refused_pod_has_none() -> None:
    runner = {"name": "runner", "image": "kslim/runner"}
    running = running_status(runner, started=0, container_id="x", pod_ip="127.10.0.4")
    assert (running["podIP"], running["podIPs"], running["hostIP"]) == (
        "127.10.0.4",
        [{"ip": "127.10.0.4"}],
        "127.0.0.1",
    )
    refused = terminated_status(
        runner, Outcome(128, "NotKslimRunner", "no"), started=0, finished=0, container_id=None
    )
    assert "podIP" not in refused and "podIPs" not in refused


def test_write_in_place_keeps_the_inode_and_pads_a_shorter_text(tmp_path: Path) -> None:
    path = tmp_path / "hosts"
    write_in_place(path, "127.0.0.1\tlocalhost\n127.10.0.5\tpeer-with-a-long-name\n")
    inode = path.stat().st_ino
    write_in_place(path, "127.0.0.1\tlocalhost\n")
    assert path.stat().st_ino == inode
    assert path.read_text() == "127.0.0.1\tlocalhost\n"
    write_in_place(path, "127.0.0.1\tlocalhos\n")  # one byte shorter
    assert path.read_text() == "127.0.0.1\tlocalhos\n"


def test_the_wrapper_execs_each_step() -> None:
    tools = {"unshare": "/u/unshare", "sh": "/b/sh", "mount": "/b/mount", "hostname": "/b/host name"}
    root, user = isolation_candidates(0, 0, tools)
    assert root.unshare == ("/u/unshare", "--mount", "--uts", "--propagation", "private")
    argv = root.argv(Path("/r/etc-hosts"), "job-worker-0", ["kslim", "run", "j"])
    assert argv[:7] == ["/u/unshare", "--mount", "--uts", "--propagation", "private", "/b/sh", "-c"]
    assert argv[7] == '/b/mount --bind "$1" /etc/hosts && \'/b/host name\' "$2" && shift 2 && exec "$@"'
    assert argv[8:] == ["kslim-pod", "/r/etc-hosts", "job-worker-0", "kslim", "run", "j"]
    assert "--map-root-user" in user.unshare
    assert user.then == ()  # root mapped to root: nothing to map back
    nested, plain = isolation_candidates(1000, 1000)
    assert nested.unshare[:3] == ("unshare", "--user", "--map-root-user")
    assert nested.then == ("unshare", "--user", "--map-user=1000", "--map-group=1000")
    assert plain.then == ()


# ---- the wrapper for real


@pytest.fixture(scope="module")
def isolation() -> Isolation:
    found = pod_isolation()
    assert found is not None, (
        "pods cannot get their own /etc/hosts here: `unshare --mount --uts` (as root) and user namespaces "
        "both fail (see the kubelet's warning); multi-node jobs on the local kubelet need one of them"
    )
    return found


def test_a_process_in_the_wrapper_sees_its_hosts_file_and_later_changes(
    isolation: Isolation, tmp_path: Path
) -> None:
    hosts = tmp_path / HOSTS_FILE
    write_in_place(hosts, "127.0.0.1\tlocalhost\n127.10.0.2\tme\n")
    wait_for_peer = (
        "import socket, time\n"
        "for attempt in range(400):\n"
        "    try:\n"
        "        print(socket.gethostname(), socket.gethostbyname('me'), socket.gethostbyname('late-peer'))\n"
        "        break\n"
        "    except OSError:\n"
        "        if not attempt:\n"
        "            print('not-yet', flush=True)\n"
        "        time.sleep(0.05)\n"
    )
    process = subprocess.Popen(
        isolation.argv(hosts, "job-worker-1", [sys.executable, "-c", wait_for_peer]),
        stdout=subprocess.PIPE,
        text=True,
    )
    assert process.stdout is not None
    assert process.stdout.readline() == "not-yet\n"  # the peer is not in its /etc/hosts yet
    write_in_place(hosts, "127.0.0.1\tlocalhost\n127.10.0.2\tme\n127.10.0.3\tlate-peer\n")
    out, _ = process.communicate(timeout=30)
    assert out.split() == ["job-worker-1", "127.10.0.2", "127.10.0.3"]
    assert socket.gethostname() != "job-worker-1"  # the host's name is untouched
    assert "late-peer" not in Path("/etc/hosts").read_text()


def test_the_wrapped_process_dies_with_the_thread_that_started_it(
    isolation: Isolation, tmp_path: Path
) -> None:
    hosts = tmp_path / HOSTS_FILE
    write_in_place(hosts, "127.0.0.1\tlocalhost\n")
    started: list[subprocess.Popen[bytes]] = []

    def start() -> None:
        started.append(
            subprocess.Popen(
                isolation.argv(hosts, "doomed", ["sleep", "60"]),
                start_new_session=True,
                preexec_fn=_die_with_thread_hook(),
            )
        )
        # sleep is the started pid itself once every step has exec'd
        wait_for(
            lambda: Path(f"/proc/{started[0].pid}/cmdline").read_bytes().startswith(b"sleep"), "sleep", 10
        )

    thread = threading.Thread(target=start)
    thread.start()
    thread.join()
    assert started[0].wait(timeout=10) == -9


# ---- two pods of a multi-node job on the test control plane


@pytest.fixture(scope="module")
def kubelet(control_plane: ControlPlane, tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalKubelet]:
    """An in-process local kubelet whose `kslim` is the network stand-in."""
    root = tmp_path_factory.mktemp("kubelet-net")
    wrapper = root / "bin" / "kslim"
    wrapper.parent.mkdir()
    wrapper.write_text(f'#!/bin/sh\nexec "{sys.executable}" "{STAND_IN}" "$@"\n')
    wrapper.chmod(0o755)
    config = KubeletConfig(
        kubeconfig=control_plane.kubeconfig, root=root, kslim=wrapper, config_wait_seconds=2
    )
    with LocalKubelet(config) as running:
        yield running
    control_plane.kubectl("delete", "node", NODE_NAME, "--ignore-not-found", "--wait=false")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("0.0.0.0", 0))  # free on every address
        return int(sock.getsockname()[1])


def worker(job: str, index: int, port: int, role: str) -> list[dict[str, Any]]:
    """A ConfigMap with the stand-in's knobs and worker pod `index` as training-operator makes it
    (labels; PADDLE_MASTER from POD_IP_DUMMY on worker 0, from worker 0's Service name on the
    others), plus POD_IP for the stand-in, and its headless Service."""
    name = f"{job}-worker-{index}"
    labels = {JOB_LABEL: job, TYPE_LABEL: "worker", INDEX_LABEL: str(index)}
    pod_ip = {"valueFrom": {"fieldRef": {"fieldPath": "status.podIP"}}}
    master = [
        {"name": "POD_IP_DUMMY", **pod_ip},
        {"name": "PADDLE_MASTER", "value": f"$(POD_IP_DUMMY):{port}"},
    ]
    if index:
        master = [{"name": "PADDLE_MASTER", "value": f"{job}-worker-0:{port}"}]
    container = {
        "name": "paddle",
        "image": "kslim/runner:test",
        "command": ["kslim", "run", "/etc/kslim/job.yaml", "--output", "/output"],
        "env": [*master, {"name": "POD_IP", **pod_ip}],
        "ports": [{"name": "master", "containerPort": port}],
        "volumeMounts": [
            {"name": "config", "mountPath": "/etc/kslim"},
            {"name": "claim", "mountPath": "/output", "subPath": name},
        ],
    }
    config = {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {"name": name},
        "data": {"job.yaml": json.dumps({"role": role, "timeout": 60})},
    }
    pod = {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name, "labels": labels},
        "spec": {
            "restartPolicy": "Never",
            "automountServiceAccountToken": False,
            "containers": [container],
            "volumes": [
                {"name": "config", "configMap": {"name": name}},
                {"name": "claim", "persistentVolumeClaim": {"claimName": CLAIM}},
            ],
        },
    }
    service = {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {"name": name, "labels": labels},
        "spec": {"clusterIP": "None", "selector": labels, "ports": [{"name": "master", "port": port}]},
    }
    return [config, service, pod]


def apply(control_plane: ControlPlane, namespace: str, *objects: dict[str, Any]) -> None:
    items = {"apiVersion": "v1", "kind": "List", "items": list(objects)}
    control_plane.kubectl("apply", "-n", namespace, "-f", "-", input=json.dumps(items))


def read_pod(api: client.ApiClient, namespace: str, name: str) -> dict[str, Any]:
    return dict(api.sanitize_for_serialization(client.CoreV1Api(api).read_namespaced_pod(name, namespace)))


def wait_phase(
    api: client.ApiClient, namespace: str, name: str, *phases: str, timeout: float = 60
) -> dict[str, Any]:
    def check() -> dict[str, Any] | None:
        pod = read_pod(api, namespace, name)
        return pod if pod.get("status", {}).get("phase") in phases else None

    return wait_for(check, f"pod {name} in phase {' or '.join(phases)}", timeout, interval=0.2)


@pytest.mark.cluster
def test_two_workers_meet_by_name_even_when_the_follower_starts_first(
    control_plane: ControlPlane,
    kube_api: client.ApiClient,
    kubelet: LocalKubelet,
    isolation: Isolation,
    namespace: str,
) -> None:
    claim = {
        "apiVersion": "v1",
        "kind": "PersistentVolumeClaim",
        "metadata": {"name": CLAIM},
        "spec": {"accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": "1Gi"}}},
    }
    port = free_port()
    apply(control_plane, namespace, claim, *worker("job", 1, port, "follower"))
    follower = wait_phase(kube_api, namespace, "job-worker-1", "Running")
    follower_dir = kubelet.config.root / "pods" / follower["metadata"]["uid"]
    assert "job-worker-0" not in (follower_dir / HOSTS_FILE).read_text()  # its peer has no IP yet

    apply(control_plane, namespace, *worker("job", 0, port, "leader"))
    leader = wait_phase(kube_api, namespace, "job-worker-0", "Succeeded", "Failed")
    follower = wait_phase(kube_api, namespace, "job-worker-1", "Succeeded", "Failed")
    records = {
        name: json.loads((kubelet.config.pvc_root / CLAIM / name / "net.json").read_text())
        for name in ("job-worker-0", "job-worker-1")
    }
    assert (leader["status"]["phase"], follower["status"]["phase"]) == ("Succeeded", "Succeeded"), records

    leader_ip, follower_ip = leader["status"]["podIP"], follower["status"]["podIP"]
    assert leader_ip != follower_ip
    assert {leader_ip, follower_ip} <= {str(ip) for ip in ipaddress.IPv4Network(POD_CIDR)}
    assert leader["status"]["podIPs"] == [{"ip": leader_ip}]
    lead, follow = records["job-worker-0"], records["job-worker-1"]
    assert lead["env"]["PADDLE_MASTER"] == f"{leader_ip}:{port}"  # $(POD_IP_DUMMY) expanded
    assert (lead["hostname"], follow["hostname"]) == ("job-worker-0", "job-worker-1")
    assert follow["resolved"] == leader_ip
    assert follow["attempts"] > 1  # it had to wait for the name
    assert lead["peer_address"] == follower_ip
    assert (lead["peer_said"], follow["leader_said"]) == (
        "hello from job-worker-1",
        "hello from job-worker-0",
    )
    assert f"{follower_ip}\tjob-worker-1\n" in follow["hosts"]
    wait_for(lambda: leader_ip not in kubelet.pod_ips.in_use(), "the leader's IP to be freed", 10)
