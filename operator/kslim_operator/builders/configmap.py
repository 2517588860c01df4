"""The ConfigMap `<name>-job` holding the resolved job file the runner reads at /etc/kslim/job.yaml."""

from __future__ import annotations

import json
from typing import Any

from kslim_api.v1alpha1 import API_VERSION, KIND, CompressionJobSpec

from kslim_operator import names
from kslim_operator.request import JobRequest


def resolved_spec(spec: CompressionJobSpec) -> dict[str, Any]:
    """The spec with every default filled in, as the runner will see it."""
    return spec.model_dump(mode="json", by_alias=True, exclude_none=True)


def build_job_file(req: JobRequest) -> dict[str, Any]:
    """The job file: apiVersion, kind, metadata name/namespace and the resolved spec."""
    return {
        "apiVersion": API_VERSION,
        "kind": KIND,
        "metadata": {"name": req.name, "namespace": req.namespace},
        "spec": job_file_spec(req.spec),
    }


def job_file_spec(spec: CompressionJobSpec) -> dict[str, Any]:
    """The resolved spec without the container's environment: the runner gets that from the pod, and
    values kept out of the ConfigMap cannot leak through it."""
    data = resolved_spec(spec)
    data.get("template", {}).pop("env", None)
    return data


def get_spec_hash(spec: CompressionJobSpec) -> str:
    """A hash of everything in the spec the Job is built from, except runPolicy.suspend (the only
    field that may change once the job has started)."""
    data = resolved_spec(spec)
    data.get("runPolicy", {}).pop("suspend", None)
    return names.short_hash(json.dumps(data, sort_keys=True), 16)


def render_job_file(req: JobRequest) -> str:
    """The job file as indented JSON, which is YAML too: the runner reads it with a YAML parser,
    people read it with `kubectl get cm -o yaml`; PyYAML's pure-Python dumper costs ~7 ms a job."""
    return json.dumps(build_job_file(req), indent=2) + "\n"


def build_configmap(req: JobRequest) -> dict[str, Any]:
    text = render_job_file(req)
    return {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {
            "name": names.configmap_name(req.name),
            "namespace": req.namespace,
            "labels": names.child_labels(req.name),
            "annotations": {names.ANNOTATION_SPEC_HASH: req.spec_hash},
            "ownerReferences": [req.owner_reference],
        },
        "immutable": True,
        "data": {names.CONFIG_FILE: text},
    }
