"""The runner's failure kinds: each carries its exit code and reason (kslim_api.contract)."""

from __future__ import annotations

from kslim_api.contract import EXIT_DEVICE, EXIT_INTERNAL, EXIT_QUALITY_GATE, EXIT_USER, Reason


class KslimError(Exception):
    """A failure with a one-line message meant for the user and a CamelCase reason."""

    exit_code = EXIT_INTERNAL
    reason: str = Reason.INTERNAL_ERROR

    def __init__(self, message: str, *, reason: str | None = None) -> None:
        super().__init__(message)
        if reason is not None:
            self.reason = reason

    @property
    def summary(self) -> str:
        """The message on one line. Errors re-raised by a DataLoader worker carry the worker's
        traceback; their last line is the original message."""
        text = str(self).strip()
        if "Traceback" in text:
            last = text.splitlines()[-1]
            text = last.split(": ", 1)[1] if last.startswith(("kslim_runner.", type(self).__name__)) else last
        return " ".join(text.split())


class UserError(KslimError):
    """The job file, the data or the weights are wrong: exit 2, never retried."""

    exit_code = EXIT_USER
    reason = Reason.INVALID_INPUT


class DeviceError(KslimError):
    """The requested device cannot run this Paddle build: exit 4."""

    exit_code = EXIT_DEVICE
    reason = Reason.DEVICE_UNSUPPORTED


class QualityGateFailed(KslimError):
    """The result missed the job's quality gate: exit 3, artifacts and report kept."""

    exit_code = EXIT_QUALITY_GATE
    reason = Reason.QUALITY_GATE_FAILED


class StorageUnavailable(KslimError):
    """Object storage or a download server did not answer (or answered 5xx): exit 1, which the Job
    retries (backoffLimit), because an outage passes and a retried pod reuses what it downloaded."""

    exit_code = EXIT_INTERNAL
    reason = Reason.STORAGE_UNAVAILABLE
