"""Where the runner finds things in its pod: the command, the mount paths and the environment the
operator sets (the runner reads the same names; a local run goes without them)."""

from __future__ import annotations

CONTAINER_NAME = "runner"
#: The job file (the CR, resolved) comes from a ConfigMap mounted here.
CONFIG_DIR = "/etc/kslim"
CONFIG_FILE = "job.yaml"
JOB_FILE = f"{CONFIG_DIR}/{CONFIG_FILE}"
#: spec.output's folder for this job (<uri>/<job name>), or scratch space the runner uploads from.
OUTPUT_DIR = "/output"
#: Each claim a pvc:// URI names is mounted at PVC_ROOT/<claim>.
PVC_ROOT = "/mnt/pvc"
#: Writable scratch (the root filesystem is read-only) and shared memory for DataLoader workers.
SCRATCH_DIR = "/tmp"
SHM_DIR = "/dev/shm"
TERMINATION_MESSAGE_PATH = "/dev/termination-log"
#: Mount points the operator owns: a user volume must not replace them.
OWNED_MOUNT_PATHS = (CONFIG_DIR, SCRATCH_DIR, SHM_DIR, OUTPUT_DIR, PVC_ROOT)

RUNNER_COMMAND = ("kslim", "run", JOB_FILE, "--output", OUTPUT_DIR)

#: Every KSLIM_ variable is the operator's (KSLIM_PVC_ROOT=/ from a user would unroot the runner).
OWNED_ENV_PREFIX = "KSLIM_"
TERMINATION_MESSAGE_PATH_ENV = "KSLIM_TERMINATION_MESSAGE_PATH"
PVC_ROOT_ENV = "KSLIM_PVC_ROOT"
OUTPUT_URI_ENV = "KSLIM_OUTPUT_URI"
"""spec.output.uri: tells the runner it runs in a pod and where its --output folder is reported."""
JOB_NAME_ENV = "KSLIM_JOB_NAME"
JOB_NAMESPACE_ENV = "KSLIM_JOB_NAMESPACE"
NO_TQDM_ENV = "KSLIM_NO_TQDM"
"""Any value: no progress bar, only progress lines."""
ALLOW_PRIVATE_URLS_ENV = "KSLIM_ALLOW_PRIVATE_URLS"
"""1: http(s) downloads may reach internal addresses (the operator's KSLIM_OPERATOR_ALLOW_PRIVATE_URLS)."""
#: Variables without the prefix the operator sets too, with their values: a read-only root
#: filesystem sends every cache to the scratch volume.
RUNTIME_ENV = {
    "PYTHONUNBUFFERED": "1",
    "HOME": SCRATCH_DIR,
    "XDG_CACHE_HOME": f"{SCRATCH_DIR}/.cache",
    "MPLCONFIGDIR": f"{SCRATCH_DIR}/matplotlib",
}
