"""The ConfigMap `<name>-job` holding the resolved job file the runner reads at /etc/kslim/job.yaml."""

from __future__ import annotations

import json
from typing import Any

from kslim_api.compressionjob import CompressionJobSpec
from kslim_api.contract import CONFIG_FILE
from kslim_api.v1alpha1 import API_VERSION, KIND

from kslim_operator import names
from kslim_operator.request import JobRequest, resolved_spec


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
        "data": {CONFIG_FILE: text},
    }
