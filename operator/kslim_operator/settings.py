"""Operator settings from ``KSLIM_OPERATOR_*`` environment variables, validated at start.

Every field below is one variable: ``max_concurrent_jobs`` is ``KSLIM_OPERATOR_MAX_CONCURRENT_JOBS``.
Lists are comma-separated. A bad value stops the operator at start with every error listed.
"""

from __future__ import annotations

import os
import socket
import uuid
from collections.abc import Mapping
from typing import Annotated, Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    StringConstraints,
    ValidationError,
    field_validator,
    model_validator,
)

from kslim_operator import __version__

ENV_PREFIX = "KSLIM_OPERATOR_"

Quantity = Annotated[str, StringConstraints(pattern=r"^[0-9]+(\.[0-9]+)?(m|k|M|G|T|P|E|Ki|Mi|Gi|Ti|Pi|Ei)?$")]
DnsName = Annotated[str, StringConstraints(pattern=r"^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$", max_length=253)]


class SettingsError(Exception):
    """The environment does not describe a valid configuration; the message lists every problem."""


class Settings(BaseModel):
    """What a platform engineer configures once per installation."""

    model_config = ConfigDict(extra="forbid", frozen=True, use_attribute_docstrings=True)

    image: Annotated[str, StringConstraints(min_length=1, pattern=r"^\S+$")] = f"kslim-runner:{__version__}"
    """Runner image used when a CompressionJob does not override spec.template.image."""
    image_pull_policy: Literal["Always", "IfNotPresent", "Never"] = "IfNotPresent"
    """Pull policy of the runner image."""
    default_cpu: Quantity | None = None
    """CPU request/limit for jobs whose spec.resources.cpu is not set (None: the schema default)."""
    default_memory: Quantity | None = None
    """Memory request/limit for jobs whose spec.resources.memory is not set."""
    gpu_resource_name: Annotated[str, StringConstraints(pattern=r"^[a-z0-9.-]+/[a-z0-9.-]+$")] = (
        "nvidia.com/gpu"
    )
    """Extended resource a GPU is requested as."""
    gpu_compute_majors: list[int] = Field(default_factory=lambda: [6, 7, 8])
    """CUDA compute capability majors the runner's Paddle build runs on (sm_61-sm_86); GPU jobs get a
    node affinity on nvidia.com/gpu.compute.major unless they set spec.template.affinity. Empty: none."""
    gpu_toleration: bool = True
    """Give GPU jobs a toleration for the usual `nvidia.com/gpu` NoSchedule taint."""
    max_concurrent_jobs: int = Field(default=0, ge=0)
    """Jobs allowed to run at once (0: no limit). The rest stay Pending/Queued in creation order."""
    namespaces: list[DnsName] = Field(default_factory=list)
    """Namespaces to watch; empty: the whole cluster."""
    allowed_service_accounts: list[DnsName] = Field(default_factory=list)
    """Service accounts a CompressionJob may name in spec.template.serviceAccountName (empty: none;
    the runner needs no API access, and any other account's token would be the job author's)."""
    allow_private_urls: bool = False
    """Let runner pods download http(s):// URLs on link-local, loopback, private and shared addresses
    (instance metadata, cluster-internal services); off, such URLs fail the job (AddressNotAllowed)."""
    metrics_port: int = Field(default=8000, ge=0, le=65535)
    """Port of the Prometheus /metrics endpoint (0: off)."""
    health_port: int = Field(default=8080, ge=0, le=65535)
    """Port of the liveness/readiness endpoint /healthz (0: off)."""
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"
    """Log level."""
    progress_interval_seconds: float = Field(default=3.0, ge=0.2, le=300)
    """How often the pod log tail of a running job is read for progress lines."""
    status_min_interval_seconds: float = Field(default=1.0, ge=0.0, le=60)
    """At most one status patch per job per this many seconds."""
    start_timeout_seconds: int = Field(default=300, ge=0)
    """A job whose pod cannot start (image pull failing, unschedulable, missing PVC) for this long
    ends Failed with that reason (0: wait forever, the condition still says why)."""
    api_workers: int = Field(default=16, ge=1, le=256)
    """Threads for calls to the API server (most urgent first: creating and starting Jobs, then status
    patches, then log tails and PVC checks)."""
    leader_election: bool = True
    """Take a coordination.k8s.io Lease before acting (`python -m kslim_operator` only)."""
    leader_election_namespace: DnsName | None = None
    """Namespace of the Lease (default: $POD_NAMESPACE, else `default`)."""
    leader_election_name: DnsName = "kslim-operator"
    """Name of the Lease."""
    lease_duration_seconds: int = Field(default=15, ge=2)
    """How long a Lease stays valid without renewal."""
    renew_deadline_seconds: int = Field(default=10, ge=1)
    """A leader that could not renew for this long stops (must be shorter than the lease duration)."""
    retry_period_seconds: float = Field(default=2.0, gt=0)
    """How often the Lease is renewed, or tried by a standby."""
    identity: Annotated[str, StringConstraints(min_length=1, max_length=128)] = Field(
        default_factory=lambda: f"{socket.gethostname()}-{uuid.uuid4().hex[:6]}"
    )
    """This replica's name in the Lease."""

    @field_validator("gpu_compute_majors")
    @classmethod
    def _majors(cls, value: list[int]) -> list[int]:
        if any(m < 1 or m > 99 for m in value):
            raise ValueError("compute capability majors are small positive integers, e.g. 6,7,8")
        return sorted(set(value))

    @model_validator(mode="after")
    def _lease_timing(self) -> Settings:
        if self.renew_deadline_seconds >= self.lease_duration_seconds:
            raise ValueError(
                f"{ENV_PREFIX}RENEW_DEADLINE_SECONDS must be shorter than {ENV_PREFIX}LEASE_DURATION_SECONDS"
            )
        return self

    @property
    def clusterwide(self) -> bool:
        return not self.namespaces

    def lease_namespace(self, environ: Mapping[str, str] | None = None) -> str:
        env = os.environ if environ is None else environ
        return self.leader_election_namespace or env.get("POD_NAMESPACE") or "default"


LIST_FIELDS = {"gpu_compute_majors", "namespaces", "allowed_service_accounts"}


def env_values(environ: Mapping[str, str]) -> dict[str, Any]:
    """Pick the prefixed variables and turn them into field values (lists split on commas)."""
    values: dict[str, Any] = {}
    for key, raw in environ.items():
        if not key.startswith(ENV_PREFIX):
            continue
        name = key[len(ENV_PREFIX) :].lower()
        if name in LIST_FIELDS:
            values[name] = [item.strip() for item in raw.split(",") if item.strip()]
        elif raw.strip() == "" and name in {"default_cpu", "default_memory", "leader_election_namespace"}:
            values[name] = None
        else:
            values[name] = raw.strip()
    return values


def load_settings(environ: Mapping[str, str] | None = None) -> Settings:
    """Settings from the environment; SettingsError lists every bad or unknown variable."""
    env = os.environ if environ is None else environ
    try:
        return Settings.model_validate(env_values(env))
    except ValidationError as error:
        problems = []
        for item in error.errors():
            field = str(item["loc"][0]) if item["loc"] else ""
            var = f"{ENV_PREFIX}{field.upper()}" if field else "settings"
            detail = item["msg"]
            if item["type"] == "extra_forbidden":
                detail = "unknown setting (check the spelling)"
            problems.append(f"{var}: {detail}")
        raise SettingsError("invalid operator settings:\n  " + "\n  ".join(problems)) from None
