"""The generated CRD on a real kube-apiserver: examples accepted, every bad spec rejected naming the
field, server defaults equal to the model's, and a started job frozen except spec.runPolicy.suspend."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import yaml
from api_cases import BAD_SPECS, EXAMPLES, GOOD_SPECS, BadSpec, GoodSpec, load_example, valid_job
from kslim_api.validate import load_job
from support import kube
from support.controlplane import ControlPlane

pytestmark = pytest.mark.cluster

RESOURCE = "compressionjobs.kslim.dev"


@pytest.fixture
def cluster(
    control_plane: ControlPlane, crds_installed: list[str], namespace: str
) -> tuple[ControlPlane, str]:
    assert f"customresourcedefinition.apiextensions.k8s.io/{RESOURCE}" in crds_installed
    return control_plane, namespace


def dry_run(cp: ControlPlane, ns: str, doc: dict[str, Any]) -> tuple[int, str, str]:
    result = cp.kubectl(
        "apply", "--dry-run=server", "-n", ns, "-o", "json", "-f", "-", input=yaml.safe_dump(doc), check=False
    )
    return result.returncode, result.stdout, result.stderr


def _without_empty(value: Any) -> Any:
    """Drop empty lists/maps (the CRD does not default them; the model does)."""
    if isinstance(value, dict):
        cleaned = {k: _without_empty(v) for k, v in value.items()}
        return {k: v for k, v in cleaned.items() if v not in ({}, [])}
    if isinstance(value, list):
        return [_without_empty(v) for v in value]
    return value


def test_kubectl_explain_teaches_the_api(cluster: tuple[ControlPlane, str]) -> None:
    cp, _ = cluster

    def explain_ready() -> bool | None:  # the OpenAPI of a new CRD is published a few seconds after it
        return cp.kubectl("explain", "compressionjob.spec", check=False).returncode == 0 or None

    kube.wait_for(explain_ready, "kubectl explain compressionjob", timeout=60, interval=0.5)
    out = cp.kubectl("explain", "compressionjob.spec.strategy").stdout
    assert "Ordered compression steps" in out and "prune" in out and "ptq" in out
    out = cp.kubectl("explain", "compressionjob.spec.strategy.prune.ratio").stdout
    assert "Uniform share of filters" in out


@pytest.mark.parametrize("path", EXAMPLES, ids=lambda p: p.stem)
def test_example_is_accepted_and_defaulted_like_the_model(
    cluster: tuple[ControlPlane, str], path: Path
) -> None:
    cp, ns = cluster
    code, out, err = dry_run(cp, ns, load_example(path))
    assert code == 0, err
    served = json.loads(out)["spec"]
    model = load_job(path).spec.model_dump(mode="json", by_alias=True, exclude_none=True)
    assert _without_empty(served) == _without_empty(model)


@pytest.mark.parametrize("case", GOOD_SPECS, ids=lambda c: c.id)
def test_legal_corner_is_accepted(cluster: tuple[ControlPlane, str], case: GoodSpec) -> None:
    cp, ns = cluster
    code, _, err = dry_run(cp, ns, case.job())
    assert code == 0, err


def test_at_least_thirty_distinct_bad_specs() -> None:
    assert len({c.id for c in BAD_SPECS}) >= 30


@pytest.mark.parametrize("case", BAD_SPECS, ids=lambda c: c.id)
def test_bad_spec_is_rejected_naming_the_field(cluster: tuple[ControlPlane, str], case: BadSpec) -> None:
    cp, ns = cluster
    code, _, err = dry_run(cp, ns, case.job())
    assert code != 0, f"the API server accepted {case.id}"
    assert case.field in err, f"the error does not name {case.field}: {err}"


def test_pattern_errors_say_in_words_what_is_expected(cluster: tuple[ControlPlane, str]) -> None:
    cp, ns = cluster
    doc = valid_job()
    doc["spec"]["strategy"][0]["prune"]["ratio"] = "30%"
    doc["spec"]["output"]["uri"] = "ftp://artifacts/jobs"
    code, _, err = dry_run(cp, ns, doc)
    assert code != 0
    assert (
        'spec.strategy[0].prune.ratio: Invalid value: "30%": must be a decimal strictly between 0 and 1'
        in err
    )
    assert 'spec.output.uri: Invalid value: "ftp://artifacts/jobs": must be a URI: pvc://' in err


def test_valid_base_of_the_bad_specs_is_accepted(cluster: tuple[ControlPlane, str]) -> None:
    cp, ns = cluster
    code, _, err = dry_run(cp, ns, valid_job())
    assert code == 0, err


STARTED = {
    "startTime": "2024-05-01T12:00:00Z",
    "phase": "Running",
    "stage": "baseline",
    "strategySummary": "prune(fpgm 0.3)",
    "progress": {"percent": 12.5, "step": 40, "total": 200},
    "baseline": {"ap": 0.3123, "latencyMs": {"fp32": {"p50": 3.1}}},
    "conditions": [
        {
            "type": "Accepted",
            "status": "True",
            "reason": "JobCreated",
            "message": "Job created",
            "lastTransitionTime": "2024-05-01T12:00:00Z",
            "observedGeneration": 1,
        },
    ],
}


def patch(
    cp: ControlPlane, ns: str, name: str, body: dict[str, Any], status: bool = False
) -> tuple[int, str]:
    args = ["patch", RESOURCE, name, "-n", ns, "--type=merge", "-p", json.dumps(body)]
    result = cp.kubectl(*args, *(["--subresource=status"] if status else []), check=False)
    return result.returncode, result.stderr


def test_started_job_is_frozen_except_suspend(cluster: tuple[ControlPlane, str]) -> None:
    cp, ns = cluster
    cp.kubectl("apply", "-n", ns, "-f", "-", input=yaml.safe_dump(valid_job("frozen")))

    # Not started yet (e.g. waiting for Kueue): the spec may still change.
    assert patch(cp, ns, "frozen", {"spec": {"model": {"inputSize": 416}}}) == (0, "")
    # A status without startTime does not start it either.
    assert patch(cp, ns, "frozen", {"status": {"phase": "Pending"}}, status=True)[0] == 0
    assert patch(cp, ns, "frozen", {"spec": {"train": {"batchSize": 4}}})[0] == 0

    # The operator starts it: status.startTime (with Accepted=True) through the status subresource.
    code, err = patch(cp, ns, "frozen", {"status": STARTED}, status=True)
    assert code == 0, err

    code, err = patch(cp, ns, "frozen", {"spec": {"model": {"inputSize": 320}}})
    assert code != 0 and "spec.model" in err and "cannot change once the job has started" in err, err
    code, err = patch(cp, ns, "frozen", {"spec": {"strategy": [{"prune": {"ratio": "0.5"}}]}})
    assert code != 0 and "spec.strategy" in err, err
    code, err = patch(cp, ns, "frozen", {"spec": {"runPolicy": {"backoffLimit": 5}}})
    assert code != 0 and "spec.runPolicy.backoffLimit" in err, err
    code, err = patch(cp, ns, "frozen", {"spec": {"template": {"nodeSelector": {"pool": "gpu"}}}})
    assert code != 0 and "spec.template" in err, err

    # Suspending and resuming is allowed, and so are further status updates.
    assert patch(cp, ns, "frozen", {"spec": {"runPolicy": {"suspend": True}}}) == (0, "")
    assert patch(cp, ns, "frozen", {"spec": {"runPolicy": {"suspend": False}}}) == (0, "")
    assert patch(cp, ns, "frozen", {"status": {"progress": {"percent": 50}}}, status=True)[0] == 0

    got = json.loads(cp.kubectl("get", RESOURCE, "frozen", "-n", ns, "-o", "json").stdout)
    assert got["spec"]["model"]["inputSize"] == 416 and got["spec"]["train"]["batchSize"] == 4
    assert got["spec"]["runPolicy"]["suspend"] is False


def test_printer_columns_show_the_status(cluster: tuple[ControlPlane, str]) -> None:
    cp, ns = cluster
    cp.kubectl("apply", "-n", ns, "-f", "-", input=yaml.safe_dump(valid_job("columns")))
    done = {
        **STARTED,
        "phase": "Succeeded",
        "stage": "report",
        "progress": {"percent": 100},
        "result": {"ap": 0.3051},
        "delta": {"speedup": 1.8},
    }
    assert patch(cp, ns, "columns", {"status": done}, status=True)[0] == 0
    table = cp.kubectl("get", "cjob", "columns", "-n", ns).stdout.splitlines()
    header = ["NAME", "PHASE", "STRATEGY", "STAGE", "PROGRESS", "BASELINE", "AP", "AP", "SPEEDUP", "AGE"]
    assert table[0].split() == header
    row = ["columns", "Succeeded", "prune(fpgm", "0.3)", "report", "100", "0.3123", "0.3051", "1.8"]
    assert table[1].split()[:9] == row


def test_condition_list_is_a_map_keyed_by_type(cluster: tuple[ControlPlane, str]) -> None:
    cp, ns = cluster
    cp.kubectl("apply", "-n", ns, "-f", "-", input=yaml.safe_dump(valid_job("conds")))
    twice = [STARTED["conditions"][0], {**STARTED["conditions"][0], "status": "False"}]
    code, err = patch(cp, ns, "conds", {"status": {"conditions": twice}}, status=True)
    assert code != 0 and "status.conditions[1]" in err and "Duplicate value" in err, err
