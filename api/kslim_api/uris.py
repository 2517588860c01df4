"""URI rules that a pattern cannot say, and redaction of credentials in text.

A `..` segment would step out of a claim (or of the output folder); user-info (`user:pass@`) would
put a password into the spec, and from there into status, Events, logs and the job's ConfigMap.
Both are refused up front (CEL on the API server, and the same check in `kslim validate`);
`redact()` is the defence where messages are built anyway.
"""

from __future__ import annotations

import re

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


def has_dotdot(uri: str) -> bool:
    return re.search(DOTDOT_PATTERN, uri) is not None


def has_userinfo(uri: str) -> bool:
    return re.search(USERINFO_PATTERN, uri) is not None


def redact(text: str) -> str:
    """Every `scheme://user:pass@` in text becomes `scheme://***@`."""
    return _USERINFO.sub(r"\1***@", text)
