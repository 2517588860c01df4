"""Where a runner pod may run: node selector, tolerations, affinity, priority."""

from __future__ import annotations

from typing import Any

from kslim_operator.request import JobRequest
from kslim_operator.settings import Settings

#: Label NVIDIA's GPU feature discovery puts on GPU nodes: the CUDA compute capability major.
GPU_COMPUTE_MAJOR_LABEL = "nvidia.com/gpu.compute.major"


def get_default_gpu_affinity(majors: list[int]) -> dict[str, Any]:
    """Keep GPU jobs on GPUs paddlepaddle-gpu 2.6.2 has kernels for (sm_61-sm_86: Pascal to Ada);
    Hopper (compute major 9) would fail inside the first kernel."""
    return {
        "nodeAffinity": {
            "requiredDuringSchedulingIgnoredDuringExecution": {
                "nodeSelectorTerms": [
                    {
                        "matchExpressions": [
                            {
                                "key": GPU_COMPUTE_MAJOR_LABEL,
                                "operator": "In",
                                "values": [str(m) for m in majors],
                            }
                        ]
                    }
                ]
            }
        }
    }


def get_affinity(req: JobRequest, settings: Settings) -> dict[str, Any] | None:
    """The user's affinity replaces the default; CPU jobs get none by default."""
    if req.spec.template.affinity is not None:
        return dict(req.spec.template.affinity)
    if req.spec.resources.gpus > 0 and settings.gpu_compute_majors:
        return get_default_gpu_affinity(settings.gpu_compute_majors)
    return None


def get_tolerations(req: JobRequest, settings: Settings) -> list[dict[str, Any]]:
    tolerations = [dict(t) for t in req.spec.template.tolerations]
    if req.spec.resources.gpus > 0 and settings.gpu_toleration:
        gpu = {"key": settings.gpu_resource_name, "operator": "Exists", "effect": "NoSchedule"}
        if not any(t.get("key") == gpu["key"] for t in tolerations):
            tolerations.append(gpu)
    return tolerations


def build_scheduling(req: JobRequest, settings: Settings) -> dict[str, Any]:
    """The scheduling part of a pod spec (only keys that have a value)."""
    template = req.spec.template
    out: dict[str, Any] = {}
    if template.node_selector:
        out["nodeSelector"] = dict(template.node_selector)
    tolerations = get_tolerations(req, settings)
    if tolerations:
        out["tolerations"] = tolerations
    affinity = get_affinity(req, settings)
    if affinity:
        out["affinity"] = affinity
    if template.priority_class_name:
        out["priorityClassName"] = template.priority_class_name
    return out
