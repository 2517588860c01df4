"""A CompressionJob as the operator reads it: the validated spec plus the metadata it needs."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from kslim_api.compressionjob import MAX_MULTI_NODE_NAME_LENGTH, MULTI_NODE_NAME, CompressionJobSpec
from kslim_api.podpolicy import service_account_message, service_account_ok
from kslim_api.v1alpha1 import API_VERSION, KIND
from pydantic import ValidationError

from kslim_operator import names


def resolved_spec(spec: CompressionJobSpec) -> dict[str, Any]:
    """The spec with every default filled in, as the runner will see it."""
    return spec.model_dump(mode="json", by_alias=True, exclude_none=True)


def get_spec_hash(spec: CompressionJobSpec) -> str:
    """A hash of everything in the spec the Job is built from, except runPolicy.suspend (the only
    field that may change once the job has started)."""
    data = resolved_spec(spec)
    data.get("runPolicy", {}).pop("suspend", None)
    return names.short_hash(json.dumps(data, sort_keys=True), 16)


@dataclass(frozen=True)
class JobRequest:
    """One CompressionJob, validated: what the builders and decisions take."""

    name: str
    namespace: str
    uid: str
    generation: int
    created: str
    labels: dict[str, str]
    spec: CompressionJobSpec
    raw_spec: dict[str, Any] = field(default_factory=dict)

    @property
    def spec_hash(self) -> str:
        """get_spec_hash of the spec, computed once per request (the ConfigMap carries it)."""
        cached = self.__dict__.get("_spec_hash")
        if cached is None:
            cached = get_spec_hash(self.spec)
            object.__setattr__(self, "_spec_hash", cached)
        return str(cached)

    @property
    def kueue_labels(self) -> dict[str, str]:
        """Kueue's labels (queue name, priority class) are passed through to the Job."""
        return {k: v for k, v in self.labels.items() if k.startswith(names.KUEUE_LABEL_PREFIX)}

    @property
    def multi_node(self) -> bool:
        """Runs as a Kubeflow PaddleJob across spec.resources.workers pods."""
        return self.spec.resources.workers > 1

    @property
    def kueue_managed(self) -> bool:
        return names.LABEL_KUEUE_QUEUE in self.labels

    @property
    def owner_reference(self) -> dict[str, Any]:
        return {
            "apiVersion": API_VERSION,
            "kind": KIND,
            "name": self.name,
            "uid": self.uid,
            "controller": True,
            "blockOwnerDeletion": True,
        }


class InvalidSpec(Exception):
    """The object bypassed the API's validation; `message` names each field and what is wrong."""


def format_validation_error(error: ValidationError, prefix: str = "spec") -> str:
    parts = []
    for item in error.errors():
        loc = ".".join(str(p) if not isinstance(p, int) else f"[{p}]" for p in item["loc"])
        loc = loc.replace(".[", "[")
        path = f"{prefix}.{loc}" if loc else prefix
        msg = item["msg"].removeprefix("Value error, ")
        parts.append(f"{path}: {msg}")
    return "; ".join(parts)


def parse_request(body: dict[str, Any]) -> JobRequest:
    """Validate a CompressionJob body; InvalidSpec says which field is wrong."""
    meta = body.get("metadata") or {}
    name = str(meta.get("name", ""))
    raw_spec = body.get("spec")
    if not isinstance(raw_spec, dict):
        raise InvalidSpec("spec: required; the object has no spec")
    if len(name) > names.MAX_JOB_NAME_LENGTH:
        raise InvalidSpec(
            f"metadata.name: at most {names.MAX_JOB_NAME_LENGTH} characters (it names the Job and labels its "
            f"pods); {name!r} has {len(name)}"
        )
    try:
        spec = CompressionJobSpec.model_validate(raw_spec)
    except ValidationError as error:
        raise InvalidSpec(format_validation_error(error)) from None
    if spec.resources.workers > 1 and len(name) > MAX_MULTI_NODE_NAME_LENGTH:
        raise InvalidSpec(MULTI_NODE_NAME.message)
    if spec.output is None:
        raise InvalidSpec(
            "spec.output: required on a cluster; set spec.output.uri, e.g. pvc://artifacts/jobs"
        )
    return JobRequest(
        name=name,
        namespace=str(meta.get("namespace", "")),
        uid=str(meta.get("uid", "")),
        generation=int(meta.get("generation") or 1),
        created=str(meta.get("creationTimestamp") or ""),
        labels=dict(meta.get("labels") or {}),
        spec=spec,
        raw_spec=raw_spec,
    )


def check_installation(req: JobRequest, allowed_service_accounts: list[str]) -> None:
    """What this installation allows beyond the schema (kslim_api.validate.check_installation says
    the same offline); InvalidSpec otherwise."""
    account = req.spec.template.service_account_name
    if not service_account_ok(account, allowed_service_accounts):
        raise InvalidSpec(
            f"spec.template.serviceAccountName: {service_account_message(allowed_service_accounts)}"
        )
