"""What a CompressionJob author may put into the runner pod: an allow-list.

Creating a CompressionJob must give no more than a restricted runner pod: no node filesystem
(hostPath), no service-account token (projected / serviceAccountToken volumes, or a
serviceAccountName the installation did not allow), and no way to override what the operator sets
in the container (its environment, its mount points). The schema (CEL on the API server) and
`kslim validate` print the messages below, word for word.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from kslim_api.contract import OWNED_ENV_PREFIX, OWNED_MOUNT_PATHS, RUNTIME_ENV

#: Volume sources a job may add: the Pod Security "restricted" set minus `projected` (which can
#: carry a service-account token).
ALLOWED_VOLUME_SOURCES = (
    "persistentVolumeClaim",
    "configMap",
    "secret",
    "emptyDir",
    "ephemeral",
    "csi",
    "downwardAPI",
)
#: Every other core/v1 VolumeSource. Declared in the CRD (as refused) so that the API server's CEL
#: rule, not field pruning, answers, with the same message as `kslim validate`.
REFUSED_VOLUME_SOURCES = (
    "hostPath",
    "projected",
    "gitRepo",
    "nfs",
    "iscsi",
    "glusterfs",
    "rbd",
    "cephfs",
    "flexVolume",
    "cinder",
    "flocker",
    "fc",
    "azureFile",
    "azureDisk",
    "vsphereVolume",
    "quobyte",
    "photonPersistentDisk",
    "portworxVolume",
    "scaleIO",
    "storageos",
    "awsElasticBlockStore",
    "gcePersistentDisk",
    "image",
)

VOLUME_MESSAGE = (
    "a volume must be exactly one of " + ", ".join(ALLOWED_VOLUME_SOURCES) + " (hostPath, projected "
    "service-account tokens and node volume sources are refused: a CompressionJob gets a restricted "
    "runner pod, see docs/operations.md)"
)

#: Variables the operator sets in the runner container (kslim_operator.builders.pod.get_env), plus
#: every KSLIM_ name: a user value must never replace them.
OWNED_ENV_NAMES = tuple(RUNTIME_ENV)
ENV_MESSAGE = (
    f"{OWNED_ENV_PREFIX}* and " + ", ".join(OWNED_ENV_NAMES) + " are set by the operator and cannot "
    "be overridden: choose another name"
)

MOUNT_MESSAGE = (
    "mountPath must not be, or be under, " + ", ".join(OWNED_MOUNT_PATHS) + " (the operator mounts "
    "the job file, scratch, output and claims there) and subPath must not contain '..'"
)

SERVICE_ACCOUNT_SETTING = "KSLIM_OPERATOR_ALLOWED_SERVICE_ACCOUNTS"


def service_account_message(allowed: Iterable[str]) -> str:
    """The one message for a serviceAccountName the installation does not allow (operator, Helm's
    ValidatingAdmissionPolicy and `kslim validate --allow-service-account` print it)."""
    names = ", ".join(sorted(allowed)) or "none"
    return (
        f"this installation allows no other service account for the runner (allowed: {names}; Helm "
        f"value operator.allowedServiceAccounts, {SERVICE_ACCOUNT_SETTING}): remove serviceAccountName, "
        "the runner needs no API access"
    )


def volume_ok(volume: Mapping[str, Any]) -> bool:
    sources = [k for k in volume if k != "name"]
    return len(sources) == 1 and sources[0] in ALLOWED_VOLUME_SOURCES


def volume_cel() -> str:
    """CEL twin of volume_ok (the schema declares every source, so none is pruned unseen)."""
    count = " + ".join(f"(has(self.{s}) ? 1 : 0)" for s in ALLOWED_VOLUME_SOURCES)
    refused = " && ".join(f"!has(self.{s})" for s in REFUSED_VOLUME_SOURCES)
    return f"{count} == 1 && {refused}"


def env_name_ok(name: str) -> bool:
    return not name.startswith(OWNED_ENV_PREFIX) and name not in OWNED_ENV_NAMES


def env_name_cel() -> str:
    owned = ", ".join(f"'{n}'" for n in OWNED_ENV_NAMES)
    return f"!self.name.startsWith('{OWNED_ENV_PREFIX}') && !(self.name in [{owned}])"


def mount_ok(mount_path: str, sub_path: str | None) -> bool:
    path = mount_path.rstrip("/") or "/"
    owned = any(path == p or path.startswith(p + "/") for p in OWNED_MOUNT_PATHS)
    return not owned and ".." not in (sub_path or "").split("/")


def mount_cel() -> str:
    owned = " || ".join(
        f"self.mountPath == '{p}' || self.mountPath.startsWith('{p}/')" for p in OWNED_MOUNT_PATHS
    )
    return f"!({owned}) && (!has(self.subPath) || !self.subPath.split('/').exists(s, s == '..'))"


def service_account_ok(name: str | None, allowed: Iterable[str]) -> bool:
    return not name or name in set(allowed)
