"""Sample CompressionJobs and Job/Pod bodies for the operator's tests (no pytest in here)."""

from __future__ import annotations

import copy
import json
from typing import Any

BASE_SPEC: dict[str, Any] = {
    "model": {"architecture": "yolov3_mobilenet_v1", "width": "0.25", "inputSize": 160, "numClasses": 3},
    "dataset": {
        "format": "coco",
        "train": {"images": "pvc://data/train", "annotations": "pvc://data/train.json"},
        "val": {"images": "pvc://data/val", "annotations": "pvc://data/val.json"},
    },
    "train": {"iterations": 20, "batchSize": 4},
    "strategy": [{"prune": {"criterion": "fpgm", "ratio": "0.3"}}, {"qat": {"pact": True}}],
    "output": {"uri": "pvc://artifacts/jobs"},
    "resources": {"gpus": 1, "cpu": "2", "memory": "4Gi", "shmSize": "1Gi"},
    "runPolicy": {"backoffLimit": 2, "activeDeadlineSeconds": 3600, "ttlSecondsAfterFinished": 600},
}


def cj_body(
    name: str = "yolo",
    namespace: str = "team-a",
    spec: dict[str, Any] | None = None,
    labels: dict[str, str] | None = None,
    status: dict[str, Any] | None = None,
    generation: int = 1,
) -> dict[str, Any]:
    return {
        "apiVersion": "kslim.dev/v1alpha1",
        "kind": "CompressionJob",
        "metadata": {
            "name": name,
            "namespace": namespace,
            "uid": f"uid-{name}",
            "generation": generation,
            "creationTimestamp": "2026-01-01T00:00:00Z",
            "labels": labels or {},
        },
        "spec": copy.deepcopy(spec if spec is not None else BASE_SPEC),
        "status": status or {},
    }


def with_spec(**changes: Any) -> dict[str, Any]:
    spec = copy.deepcopy(BASE_SPEC)
    spec.update(changes)
    return spec


REPORT: dict[str, Any] = {
    "outcome": "Succeeded",
    "reason": None,
    "message": "",
    "stage": "report",
    "baseline": {
        "ap": 0.31,
        "ap50": 0.62,
        "gflops": 1.2,
        "params": 1234567,
        "sizeBytes": 4900000,
        "latencyMs": {"fp32": {"p50": 3.1, "p90": 3.4, "mean": 3.2}},
    },
    "result": {
        "ap": 0.306,
        "ap50": 0.61,
        "gflops": 0.74,
        "params": 740000,
        "sizeBytes": 3000000,
        "int8SizeBytes": 1300000,
        "latencyMs": {
            "fp32": {"p50": 2.0, "p90": 2.2, "mean": 2.1},
            "int8": {"p50": 1.5, "p90": 1.6, "mean": 1.5},
        },
    },
    "delta": {"ap": -0.004, "gflopsRatio": 0.62, "paramsRatio": 0.6, "sizeRatio": 0.27, "speedup": 2.07},
    "qualityGate": {"passed": True, "message": "AP drop 0.4 <= 1.0 points"},
    "artifacts": {
        "model": "pvc://artifacts/jobs/yolo/model",
        "report": "pvc://artifacts/jobs/yolo/report.json",
    },
}


def report_text(**changes: Any) -> str:
    data = copy.deepcopy(REPORT)
    data.update(changes)
    return json.dumps(data, separators=(",", ":"))


def job_body(
    name: str = "yolo",
    namespace: str = "team-a",
    *,
    suspend: bool = False,
    status: dict[str, Any] | None = None,
    owner_uid: str | None = None,
    generation: int = 1,
) -> dict[str, Any]:
    return {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {
            "name": name,
            "namespace": namespace,
            "uid": f"job-uid-{name}",
            "generation": generation,
            "labels": {"kslim.dev/job-name": name},
            "ownerReferences": [{"uid": owner_uid or f"uid-{name}", "controller": True}],
        },
        "spec": {"suspend": suspend},
        "status": status or {},
    }


def pod_body(
    name: str = "yolo-abcde",
    cj: str = "yolo",
    *,
    phase: str = "Pending",
    created: str = "2026-01-01T00:00:05Z",
    state: dict[str, Any] | None = None,
    conditions: list[dict[str, Any]] | None = None,
    node: str | None = None,
) -> dict[str, Any]:
    status: dict[str, Any] = {"phase": phase, "conditions": conditions or []}
    if state is not None:
        status["containerStatuses"] = [{"name": "runner", "state": state}]
    return {
        "metadata": {"name": name, "labels": {"kslim.dev/job-name": cj}, "creationTimestamp": created},
        "spec": {"nodeName": node} if node else {},
        "status": status,
    }


def terminated(code: int, message: str | None = None, reason: str | None = None) -> dict[str, Any]:
    t: dict[str, Any] = {"exitCode": code, "reason": reason or ("Completed" if code == 0 else "Error")}
    if message is not None:
        t["message"] = message
    return {"terminated": t}
