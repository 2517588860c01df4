"""Why the API server would not create a child, in the user's words (pure).

Two places it happens: creating the ConfigMap or Job (the answer comes back at once: 422 invalid,
403 quota or admission), and the Job controller creating the pod (the answer is only a FailedCreate
Event on the Job: PodSecurity, quota, a missing claim). Neither is worth retrying: the spec or the
namespace must change, so the first fails the CompressionJob at once and the second after the start
timeout, each with the server's message.
"""

from __future__ import annotations

from kslim_api.contract import Phase, redact

from kslim_operator.kube import PermanentApiError
from kslim_operator.observe import Observation

#: Shown while a Job cannot create its pod, and the Failed reason once the start timeout passes.
POD_CREATE_REASONS = ("PodSecurityViolation", "QuotaExceeded", "PodCreateFailed")


def _reason(status: int, message: str) -> str:
    text = message.lower()
    if "exceeded quota" in text or "forbidden: exceeded" in text:
        return "QuotaExceeded"
    if "podsecurity" in text:
        return "PodSecurityViolation"
    if status in (400, 422):
        return "InvalidSpec"
    return "CreateRefused"


def creation_refused(what: str, status: int, message: str) -> Observation:
    """The Failed observation for a child the API server refused (`what`: "Job", "ConfigMap")."""
    reason = _reason(status, message)
    text = f"the API server refused the {what} built from this spec ({status}): {redact(message)}"
    if reason == "InvalidSpec":
        text += "; fix the spec (often spec.template) and re-create the CompressionJob"
    return Observation(Phase.FAILED, reason, text[:2000], terminal=True)


def pod_create_failure(messages: list[str]) -> tuple[str, str] | None:
    """(reason, message) from a Job's FailedCreate Event messages (oldest first); None if none."""
    if not messages:
        return None
    last = redact(messages[-1])
    reason = _reason(0, last)
    if reason not in POD_CREATE_REASONS:
        reason = "PodCreateFailed"
    return reason, f"the Job cannot create its pod: {last}"[:2000]


ENGINE_NOT_INSTALLED = "EngineNotInstalled"
ENGINE_NOT_ENABLED = "EngineNotEnabled"


def engine_refused(error: Exception) -> Observation:
    """The Failed observation for a PaddleJob the API server would not create: no such resource
    (training-operator is not installed), forbidden (the chart did not grant it), or refused."""
    if not isinstance(error, PermanentApiError):  # NotFound: the kubeflow.org/v1 paddlejobs resource
        return Observation(
            Phase.FAILED,
            ENGINE_NOT_INSTALLED,
            "spec.resources.workers > 1 runs as a Kubeflow PaddleJob, and this cluster has no "
            "kubeflow.org/v1 PaddleJob resource: install Kubeflow training-operator v1.8 (its standalone "
            "manifests), or set spec.resources.workers to 1",
            terminal=True,
        )
    if error.status == 403 and "paddlejobs" in error.message:
        return Observation(
            Phase.FAILED,
            ENGINE_NOT_ENABLED,
            "spec.resources.workers > 1 runs as a Kubeflow PaddleJob, which the operator may not create "
            f"here ({redact(error.message)}): install kslim's chart with multiNode.enabled=true, or set "
            "spec.resources.workers to 1",
            terminal=True,
        )
    return creation_refused("PaddleJob", error.status, error.message)
