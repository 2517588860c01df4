"""The runner's exit codes (docs/contracts.md), as far as the operator acts on them."""

EXIT_OK = 0
EXIT_INTERNAL = 1  # retried up to backoffLimit
EXIT_USER = 2
EXIT_QUALITY_GATE = 3
EXIT_DEVICE = 4

#: Never retried: the Job's podFailurePolicy fails the Job on these.
NO_RETRY_EXIT_CODES = (EXIT_USER, EXIT_QUALITY_GATE, EXIT_DEVICE)
