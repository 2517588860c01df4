"""The URIs a job names its data by, and the rules a pattern cannot say.

pvc://<claim>/<path> (a PersistentVolumeClaim, mounted by the operator under PVC_ROOT),
s3://<bucket>/<key>, http(s)://<host>/<path> (downloaded by the runner) and file://<path>.

A `..` segment would step out of a claim (or of the output folder); user-info (`user:pass@`) would
put a password into the spec, and from there into status, Events, logs and the job's ConfigMap.
Both are refused up front (CEL on the API server, and the same check in `kslim validate`);
`redact()` is the defence where messages are built anyway.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

PVC_SCHEME = "pvc://"
S3_SCHEME = "s3://"
HTTP_SCHEMES = ("http://", "https://")
FILE_SCHEME = "file://"
#: Downloaded by the runner into its cache.
REMOTE_SCHEMES = (S3_SCHEME, *HTTP_SCHEMES)

#: The schema's pattern of a URI field (a DNS-1123 claim name, an S3 bucket name).
URI_PATTERN = (
    r"^(pvc://[a-z0-9]([-a-z0-9]*[a-z0-9])?(/[^\s]*)?|s3://[a-z0-9][-a-z0-9.]{1,61}[a-z0-9](/[^\s]*)?"
    r"|https?://[^\s/]+(/[^\s]*)?|file://[^\s]+)$"
)
URI_HINT = "must be a URI: pvc://<claim>/<path>, s3://<bucket>/<key>, http(s)://... or file://<path>"

DOTDOT_MESSAGE = "must not contain '..' path segments: name the file from the root of its claim or bucket"
USERINFO_MESSAGE = (
    "must not contain user-info (user:password@): give credentials through a Secret "
    "(spec.template.env valueFrom.secretKeyRef)"
)

#: CEL twins. RE2 (CEL's `matches`) and Python's `re` read these the same way.
DOTDOT_PATTERN = r"(^|/)\.\.(/|$)"
USERINFO_PATTERN = r"^[a-z0-9]+://[^/]*@"
DOTDOT_CEL = f"!self.matches('{DOTDOT_PATTERN}')".replace("\\", "\\\\")
USERINFO_CEL = f"!self.matches('{USERINFO_PATTERN}')"

_USERINFO = re.compile(r"\b([a-zA-Z][a-zA-Z0-9+.-]*://)[^/\s@]*@")


@dataclass(frozen=True)
class PvcRef:
    claim: str
    path: str
    """Inside the claim, no leading or trailing slash; "" for the claim's root."""


def parse_pvc_uri(uri: str) -> PvcRef | None:
    """pvc://claim/some/path -> PvcRef("claim", "some/path"); None for other schemes and for a
    pvc:// URI that names no claim."""
    if not uri.startswith(PVC_SCHEME):
        return None
    claim, _, path = uri[len(PVC_SCHEME) :].strip("/").partition("/")
    return PvcRef(claim=claim, path=path.strip("/")) if claim else None


def is_remote(uri: str) -> bool:
    return uri.startswith(REMOTE_SCHEMES)


def has_dotdot(uri: str) -> bool:
    return re.search(DOTDOT_PATTERN, uri) is not None


def has_userinfo(uri: str) -> bool:
    return re.search(USERINFO_PATTERN, uri) is not None


def redact(text: str) -> str:
    """Every `scheme://user:pass@` in text becomes `scheme://***@`."""
    return _USERINFO.sub(r"\1***@", text)
