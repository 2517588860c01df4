"""How a run ends: the runner's exit codes, its outcomes and the reasons it gives (docs/contracts.md).

The Job's podFailurePolicy keys on the exit codes; the reason travels in the termination message and
becomes the reason of the CompressionJob's `Failed` condition.
"""

from __future__ import annotations

import enum

EXIT_OK = 0
EXIT_INTERNAL = 1  # retried up to backoffLimit
EXIT_USER = 2
EXIT_QUALITY_GATE = 3
EXIT_DEVICE = 4

#: Never retried: the Job's podFailurePolicy fails the Job on these.
NO_RETRY_EXIT_CODES = (EXIT_USER, EXIT_QUALITY_GATE, EXIT_DEVICE)


class Outcome(enum.StrEnum):
    """The termination message's `outcome`."""

    SUCCEEDED = "Succeeded"
    FAILED = "Failed"


class Reason(enum.StrEnum):
    """Every reason the runner reports, one CamelCase word each (docs/operations.md says what to do)."""

    COMPLETED = "Completed"  # succeeded (quality gate passed or not set)
    # exit 1: retried
    INTERNAL_ERROR = "InternalError"
    STORAGE_UNAVAILABLE = "StorageUnavailable"
    # exit 3: the quality gate missed, or could not be decided
    QUALITY_GATE_FAILED = "QualityGateFailed"
    MEASUREMENT_UNSTABLE = "MeasurementUnstable"
    # exit 4
    DEVICE_UNSUPPORTED = "DeviceUnsupported"
    # exit 2: the job file, the data, the weights or the storage settings are wrong
    INVALID_INPUT = "InvalidInput"
    INVALID_SPEC = "InvalidSpec"
    INVALID_MODEL = "InvalidModel"
    BAD_CONFIG = "BadConfig"
    BAD_WEIGHTS = "BadWeights"
    TEACHER_MISMATCH = "TeacherMismatch"
    METHOD_UNAVAILABLE = "MethodUnavailable"
    QUANTIZATION_NOT_APPLIED = "QuantizationNotApplied"
    TRAINING_DIVERGED = "TrainingDiverged"
    NOT_MULTI_NODE = "NotMultiNode"  # a training of a multi-node job that only one process can run
    NO_GPU = "NoGPU"
    OUTPUT_NOT_WRITABLE = "OutputNotWritable"
    DATA_NOT_FOUND = "DataNotFound"
    EMPTY_DATASET = "EmptyDataset"
    CORRUPT_IMAGE = "CorruptImage"
    CLASS_OUT_OF_RANGE = "ClassOutOfRange"
    MISSING_SEGMENTATION = "MissingSegmentation"
    UNSUPPORTED_FORMAT = "UnsupportedFormat"
    BAD_URL = "BadURL"
    ADDRESS_NOT_ALLOWED = "AddressNotAllowed"
    DOWNLOAD_TOO_LARGE = "DownloadTooLarge"
    CHECKSUM_MISMATCH = "ChecksumMismatch"
    BAD_ARCHIVE = "BadArchive"
    UNSAFE_ARCHIVE = "UnsafeArchive"
    UNSAFE_KEY = "UnsafeKey"
    BUCKET_NOT_FOUND = "BucketNotFound"
    STORAGE_ACCESS_DENIED = "StorageAccessDenied"
    STORAGE_ERROR = "StorageError"


#: The operator's reason when the runner stopped without a termination message of its own.
RUNNER_ERROR = "RunnerError"
#: ... and when its exit code alone says what happened.
EXIT_CODE_REASONS = {EXIT_QUALITY_GATE: Reason.QUALITY_GATE_FAILED, EXIT_DEVICE: Reason.DEVICE_UNSUPPORTED}


def reason_for_exit_code(code: int | None) -> str:
    """The reason of a runner that left none: by exit code, else RunnerError."""
    return EXIT_CODE_REASONS.get(code, RUNNER_ERROR) if code is not None else RUNNER_ERROR
