"""End to end, as a user sees it: `kubectl apply -f examples/quickstart.yaml` on the dev-cluster
stack (operator under the chart's RBAC + local kubelet running the real runner) -> Succeeded with
the runner's figures in the status, the operator's /metrics and a real Prometheus; deleting the
CompressionJob removes its children; a job with a missing dataset ends Failed naming the file."""

from __future__ import annotations

import json
import re
import subprocess
import time
import urllib.parse
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from e2e_stack import ARTIFACTS_CLAIM, REPO_ROOT, Stack, free_port
from kubernetes import client
from prometheus_client.parser import text_string_to_metric_families
from support.kube import exists, wait_for

#: The quick start trains for minutes on 2 CPU cores; pytest-timeout (900 s per test) would cut the
#: test that first asks for it, so these tests get their own limit.
pytestmark = [pytest.mark.cluster, pytest.mark.timeout(1500)]

QUICKSTART = REPO_ROOT / "examples" / "quickstart.yaml"
QUICKSTART_TIMEOUT = 1200
FAILING_TIMEOUT = 180
MISSING_ANNOTATIONS = f"pvc://{ARTIFACTS_CLAIM}/missing/annotations.json"
CAMEL_CASE = re.compile(r"^[A-Z][A-Za-z0-9]*$")


# ---- helpers


def quickstart_manifest() -> dict[str, Any]:
    return dict(yaml.safe_load(QUICKSTART.read_text()))


def read_cj(stack: Stack, name: str) -> dict[str, Any]:
    custom = client.CustomObjectsApi(stack.api)
    found: Any = custom.get_namespaced_custom_object(
        "kslim.dev", "v1alpha1", stack.namespace, "compressionjobs", name
    )
    return dict(found)


def condition(cj: dict[str, Any], kind: str) -> dict[str, Any] | None:
    return next((c for c in (cj.get("status") or {}).get("conditions") or [] if c["type"] == kind), None)


def is_true(cj: dict[str, Any], kind: str) -> bool:
    found = condition(cj, kind)
    return found is not None and found["status"] == "True"


def kubectl_wait(stack: Stack, name: str, kind: str, give_up_on: str, timeout: float) -> dict[str, Any]:
    """`kubectl wait --for=condition=<kind> cjob/<name>`, stopped early once `give_up_on` is True
    (a failed quick start must not cost the whole timeout). Returns the CompressionJob."""
    command = [
        str(stack.control_plane.bin_dir / "kubectl"), f"--kubeconfig={stack.control_plane.kubeconfig}",
        "-n", stack.namespace, "wait", f"--for=condition={kind}", f"cjob/{name}", f"--timeout={timeout:.0f}s",
    ]  # fmt: skip
    waiter = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        while waiter.poll() is None:
            if is_true(read_cj(stack, name), give_up_on):
                break
            time.sleep(1.0)
    finally:
        if waiter.poll() is None:
            waiter.kill()
        output = waiter.communicate()[0]
    cj = read_cj(stack, name)
    if waiter.returncode != 0 or not is_true(cj, kind):
        status = json.dumps(cj.get("status"), indent=1)
        pytest.fail(
            f"cjob/{name} did not reach {kind}: {output.strip()}\nstatus: {status}\n{stack.diagnostics()}",
            pytrace=False,
        )
    return cj


def samples(metrics_text: str, name: str) -> dict[frozenset[tuple[str, str]], float]:
    """The samples of metric `name`: labels -> value."""
    return {
        frozenset(sample.labels.items()): sample.value
        for family in text_string_to_metric_families(metrics_text)
        for sample in family.samples
        if sample.name == name
    }


def job_labels(stack: Stack, **extra: str) -> frozenset[tuple[str, str]]:
    return frozenset({"namespace": stack.namespace, "name": "quickstart", **extra}.items())


def gone(read: Callable[[], object]) -> Callable[[], bool]:
    """A check that `read()` finds nothing any more."""
    return lambda: not exists(read)


def p50_ms(model: dict[str, Any]) -> float:
    return float(model["latencyMs"]["fp32"]["p50"])


# ---- a job that cannot succeed


def test_a_job_with_a_missing_dataset_fails_naming_the_file(stack: Stack) -> None:
    manifest = quickstart_manifest()
    manifest["metadata"]["name"] = "missing-data"
    split = {"images": f"pvc://{ARTIFACTS_CLAIM}/missing/images", "annotations": MISSING_ANNOTATIONS}
    manifest["spec"]["dataset"] = {"format": "coco", "train": split, "val": split}
    stack.apply(manifest)
    cj = kubectl_wait(stack, "missing-data", "Failed", give_up_on="Succeeded", timeout=FAILING_TIMEOUT)
    failed = condition(cj, "Failed")
    assert failed is not None
    assert CAMEL_CASE.match(failed["reason"]), failed
    assert failed["reason"] == "DataNotFound", failed
    assert "missing/annotations.json" in failed["message"], failed
    assert cj["status"]["phase"] == "Failed"
    assert cj["status"]["attempts"] == 1  # a user error is not retried (exit code 2, podFailurePolicy)


# ---- the quick start


@pytest.fixture(scope="module")
def quickstart(stack: Stack) -> Iterator[dict[str, Any]]:
    """examples/quickstart.yaml applied as is and waited for with kubectl; prints its duration."""
    started = time.monotonic()
    stack.apply(quickstart_manifest())
    cj = kubectl_wait(stack, "quickstart", "Succeeded", give_up_on="Failed", timeout=QUICKSTART_TIMEOUT)
    elapsed = time.monotonic() - started
    print(f"\nquickstart: Succeeded in {elapsed:.0f} s (kubectl apply -> condition Succeeded)")
    yield cj


@pytest.mark.slow
def test_quickstart_status_carries_the_runner_report(stack: Stack, quickstart: dict[str, Any]) -> None:
    status = quickstart["status"]
    assert status["phase"] == "Succeeded"
    report_path = stack.local_path(status["artifacts"]["report"])
    report = json.loads(report_path.read_text())
    for model in ("baseline", "result"):
        assert status[model]["ap"] == pytest.approx(report[model]["ap"], rel=1e-9, abs=1e-12), model
        for precision, stats in report[model]["latencyMs"].items():
            for stat, value in stats.items():
                got = status[model]["latencyMs"][precision][stat]
                assert got == pytest.approx(value, rel=1e-9), (model, precision, stat)
        assert 0.0 <= status[model]["ap"] <= 1.0
    assert status["delta"]["speedup"] == pytest.approx(report["delta"]["speedup"], rel=1e-9)
    assert status["stage"] == "report"


@pytest.mark.slow
def test_kubectl_get_shows_phase_and_ap(stack: Stack, quickstart: dict[str, Any]) -> None:
    columns = stack.kubectl("get", "cjob", "quickstart", "--no-headers").stdout.split()
    assert "Succeeded" in columns
    numbers = [float(c) for c in columns if re.fullmatch(r"-?[0-9.]+(e-?[0-9]+)?", c)]
    status = quickstart["status"]
    for figure in (status["baseline"]["ap"], status["result"]["ap"]):
        assert any(n == pytest.approx(figure, abs=1e-6) for n in numbers), (figure, columns)


@pytest.mark.slow
def test_operator_metrics_show_the_job_and_pass_promtool(stack: Stack, quickstart: dict[str, Any]) -> None:
    text = stack.metrics()
    status = quickstart["status"]
    ap = samples(text, "kslim_job_ap")
    assert ap[job_labels(stack, model="baseline")] == pytest.approx(status["baseline"]["ap"])
    assert ap[job_labels(stack, model="result")] == pytest.approx(status["result"]["ap"])
    latency = samples(text, "kslim_job_latency_seconds")
    key = job_labels(stack, model="result", precision="fp32")
    assert latency[key] == pytest.approx(p50_ms(status["result"]) / 1000.0)
    speedup = samples(text, "kslim_job_speedup_ratio")
    assert speedup[job_labels(stack)] == pytest.approx(status["delta"]["speedup"])
    assert samples(text, "kslim_jobs")[frozenset({"phase": "Succeeded"}.items())] >= 1
    assert samples(text, "kslim_jobs_succeeded_total")[frozenset()] >= 1
    check = subprocess.run(
        ["promtool", "check", "metrics"], input=text, capture_output=True, text=True, check=False
    )
    assert check.returncode == 0, f"promtool check metrics:\n{check.stdout}{check.stderr}"


@pytest.fixture
def prometheus(stack: Stack, tmp_path: Path) -> Iterator[str]:
    """A real Prometheus server (Debian's) scraping the operator every second; yields its URL."""
    target = urllib.parse.urlsplit(stack.metrics_url).netloc
    config = {
        "global": {"scrape_interval": "1s", "evaluation_interval": "1s"},
        "scrape_configs": [{"job_name": "kslim-operator", "static_configs": [{"targets": [target]}]}],
    }
    (tmp_path / "prometheus.yml").write_text(yaml.safe_dump(config))
    port = free_port()
    log = (tmp_path / "prometheus.log").open("wb")
    args = [
        "prometheus",
        f"--config.file={tmp_path / 'prometheus.yml'}",
        f"--storage.tsdb.path={tmp_path / 'data'}",
        f"--web.listen-address=127.0.0.1:{port}",
    ]
    server = subprocess.Popen(args, stdout=log, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    try:
        wait_for(
            lambda: server.poll() is None and _ready(url), f"Prometheus at {url}", timeout=60, interval=0.3
        )
        yield url
    finally:
        server.terminate()
        try:
            server.wait(timeout=15)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait()
        log.close()


def _ready(url: str) -> bool:
    try:
        with urllib.request.urlopen(f"{url}/-/ready", timeout=2) as response:
            return bool(response.status == 200)
    except OSError:
        return False


def _query(url: str, promql: str) -> list[dict[str, Any]]:
    with urllib.request.urlopen(
        f"{url}/api/v1/query?{urllib.parse.urlencode({'query': promql})}"
    ) as response:
        body = json.loads(response.read())
    assert body["status"] == "success", body
    return list(body["data"]["result"])


@pytest.mark.slow
def test_prometheus_scrapes_the_job_ap(stack: Stack, quickstart: dict[str, Any], prometheus: str) -> None:
    promql = f'kslim_job_ap{{namespace="{stack.namespace}", name="quickstart", model="result"}}'
    result = wait_for(lambda: _query(prometheus, promql), f"{promql} in Prometheus", timeout=60, interval=0.5)
    assert len(result) == 1
    assert result[0]["metric"]["job"] == "kslim-operator"
    assert float(result[0]["value"][1]) == pytest.approx(quickstart["status"]["result"]["ap"])
    up = _query(prometheus, 'up{job="kslim-operator"}')
    assert [float(r["value"][1]) for r in up] == [1.0]


@pytest.mark.slow
def test_deleting_the_job_removes_its_children(stack: Stack, quickstart: dict[str, Any]) -> None:
    stack.kubectl("delete", "cjob", "quickstart", "--timeout=60s")
    core, batch = client.CoreV1Api(stack.api), client.BatchV1Api(stack.api)
    ns = stack.namespace
    job = gone(lambda: batch.read_namespaced_job("quickstart", ns))
    wait_for(job, "Job quickstart deleted", 60, 0.5)
    configmap = gone(lambda: core.read_namespaced_config_map("quickstart-job", ns))
    wait_for(configmap, "ConfigMap quickstart-job deleted", 60, 0.5)
    selector = "kslim.dev/job-name=quickstart"
    wait_for(lambda: not core.list_namespaced_pod(ns, label_selector=selector).items, "pods deleted", 60, 0.5)
    assert job_labels(stack, model="result") not in samples(stack.metrics(), "kslim_job_ap")
