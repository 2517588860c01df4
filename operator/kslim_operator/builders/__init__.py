"""Pure builders of the objects the operator creates: each returns a plain dict, no I/O."""

from kslim_operator.builders.configmap import build_configmap, build_job_file
from kslim_operator.builders.job import build_job
from kslim_operator.builders.paddlejob import build_handover_secret, build_paddlejob
from kslim_operator.builders.pod import build_pod_template

__all__ = [
    "build_configmap",
    "build_handover_secret",
    "build_job",
    "build_job_file",
    "build_paddlejob",
    "build_pod_template",
]
