"""The runner⇄operator contract, in one place (docs/contracts.md): the runner writes it, the operator
reads it, `kslim validate` and bench/ use it, and nothing else defines these facts.

- ``exits``        exit codes, outcomes and failure reasons
- ``states``       phases, condition types and stages
- ``progress``     the progress line (render and parse)
- ``termination``  the termination message (render and parse)
- ``uris``         URI schemes, pvc:// parsing, the rules on URIs and redaction
- ``pod``          the runner's command, mount paths and environment variables
- ``reading``      what the parsers share: JSON as status stores it, logged rejections

Everything here is plain Python (no pydantic, no Paddle). Import from this package, not its modules.
"""

from kslim_api.contract.exits import (
    EXIT_CODE_REASONS,
    EXIT_DEVICE,
    EXIT_INTERNAL,
    EXIT_OK,
    EXIT_QUALITY_GATE,
    EXIT_USER,
    NO_RETRY_EXIT_CODES,
    RUNNER_ERROR,
    Outcome,
    Reason,
    reason_for_exit_code,
)
from kslim_api.contract.pod import (
    ALLOW_PRIVATE_URLS_ENV,
    CONFIG_DIR,
    CONFIG_FILE,
    CONTAINER_NAME,
    JOB_FILE,
    JOB_NAME_ENV,
    JOB_NAMESPACE_ENV,
    NO_TQDM_ENV,
    OUTPUT_DIR,
    OUTPUT_URI_ENV,
    OWNED_ENV_PREFIX,
    OWNED_MOUNT_PATHS,
    PVC_ROOT,
    PVC_ROOT_ENV,
    RUNNER_COMMAND,
    RUNTIME_ENV,
    SCRATCH_DIR,
    SHM_DIR,
    TERMINATION_MESSAGE_PATH,
    TERMINATION_MESSAGE_PATH_ENV,
)
from kslim_api.contract.progress import ProgressLine, last_progress, parse_progress_line
from kslim_api.contract.states import STAGES, ConditionType, Phase, Stage, planned_stages
from kslim_api.contract.termination import TerminationMessage, parse_termination_message
from kslim_api.contract.uris import (
    DOTDOT_CEL,
    DOTDOT_MESSAGE,
    FILE_SCHEME,
    HTTP_SCHEMES,
    PVC_SCHEME,
    REMOTE_SCHEMES,
    S3_SCHEME,
    URI_HINT,
    URI_PATTERN,
    USERINFO_CEL,
    USERINFO_MESSAGE,
    PvcRef,
    has_dotdot,
    has_userinfo,
    is_remote,
    parse_pvc_uri,
    redact,
)

__all__ = [
    "ALLOW_PRIVATE_URLS_ENV",
    "CONFIG_DIR",
    "CONFIG_FILE",
    "CONTAINER_NAME",
    "DOTDOT_CEL",
    "DOTDOT_MESSAGE",
    "EXIT_CODE_REASONS",
    "EXIT_DEVICE",
    "EXIT_INTERNAL",
    "EXIT_OK",
    "EXIT_QUALITY_GATE",
    "EXIT_USER",
    "FILE_SCHEME",
    "HTTP_SCHEMES",
    "JOB_FILE",
    "JOB_NAMESPACE_ENV",
    "JOB_NAME_ENV",
    "NO_RETRY_EXIT_CODES",
    "NO_TQDM_ENV",
    "OUTPUT_DIR",
    "OUTPUT_URI_ENV",
    "OWNED_ENV_PREFIX",
    "OWNED_MOUNT_PATHS",
    "PVC_ROOT",
    "PVC_ROOT_ENV",
    "PVC_SCHEME",
    "REMOTE_SCHEMES",
    "RUNNER_COMMAND",
    "RUNNER_ERROR",
    "RUNTIME_ENV",
    "S3_SCHEME",
    "SCRATCH_DIR",
    "SHM_DIR",
    "STAGES",
    "TERMINATION_MESSAGE_PATH",
    "TERMINATION_MESSAGE_PATH_ENV",
    "URI_HINT",
    "URI_PATTERN",
    "USERINFO_CEL",
    "USERINFO_MESSAGE",
    "ConditionType",
    "Outcome",
    "Phase",
    "ProgressLine",
    "PvcRef",
    "Reason",
    "Stage",
    "TerminationMessage",
    "has_dotdot",
    "has_userinfo",
    "is_remote",
    "last_progress",
    "parse_progress_line",
    "parse_pvc_uri",
    "parse_termination_message",
    "planned_stages",
    "reason_for_exit_code",
    "redact",
]
