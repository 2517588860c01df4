"""Where a job's data lives: pvc:// URIs -> the volumes and mounts of the runner pod.

Each claim named by any pvc:// URI of the spec is mounted at PVC_ROOT/<claim> (the runner maps
pvc://claim/path to $KSLIM_PVC_ROOT/claim/path; kslim_api.contract); the output location is also
mounted at OUTPUT_DIR, as the sub-path <path>/<job name> of its claim, so every attempt writes to
(and resumes from) the same folder.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import Any

from kslim_api.contract import OUTPUT_DIR, PVC_ROOT, parse_pvc_uri

from kslim_operator import names


def iter_strings(value: Any) -> Iterator[str]:
    """Every string anywhere in a JSON-like value (spec dicts and lists)."""
    if isinstance(value, str):
        yield value
    elif isinstance(value, dict):
        for item in value.values():
            yield from iter_strings(item)
    elif isinstance(value, list):
        for item in value:
            yield from iter_strings(item)


def get_claims(spec: dict[str, Any]) -> list[str]:
    """Claims named by pvc:// URIs anywhere in the spec (user volumes excluded), sorted."""
    searched = {k: v for k, v in spec.items() if k != "template"}
    refs = (parse_pvc_uri(s) for s in iter_strings(searched))
    return sorted({r.claim for r in refs if r is not None})


def volume_name(claim: str) -> str:
    return names.dns_label(f"pvc-{claim}")


def get_output_subpath(output_uri: str, job_name: str) -> str:
    """Sub-path of the output claim the job writes to: <path>/<job name>."""
    ref = parse_pvc_uri(output_uri)
    base = ref.path if ref else ""
    return f"{base}/{job_name}" if base else job_name


def build_claim_volumes(claims: Iterable[str]) -> list[dict[str, Any]]:
    return [{"name": volume_name(claim), "persistentVolumeClaim": {"claimName": claim}} for claim in claims]


def build_claim_mounts(claims: Iterable[str]) -> list[dict[str, Any]]:
    return [{"name": volume_name(claim), "mountPath": f"{PVC_ROOT}/{claim}"} for claim in claims]


def build_output_mount(output_uri: str, job_name: str) -> dict[str, Any]:
    """The /output mount: the output claim's job folder, or scratch space for other schemes
    (the runner uploads from there)."""
    ref = parse_pvc_uri(output_uri)
    if ref is None:
        return {"name": "output", "mountPath": OUTPUT_DIR}
    return {
        "name": volume_name(ref.claim),
        "mountPath": OUTPUT_DIR,
        "subPath": get_output_subpath(output_uri, job_name),
    }
