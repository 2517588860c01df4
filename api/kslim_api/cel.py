"""CEL validation rules as they appear in the CRD (`x-kubernetes-validations`).

The models in v1alpha1 pair each rule with its Python twin (`v1alpha1.Rule`), so the API server
and `kslim validate` print the same message for the same mistake.
"""

from __future__ import annotations

from dataclasses import dataclass

CEL_KEY = "x-kubernetes-validations"


@dataclass(frozen=True)
class CelRule:
    """One `x-kubernetes-validations` entry.

    `field_path` (relative to the object the rule sits on, e.g. ".dataset.train") makes the API
    server report the error on that field instead of on the object.
    """

    rule: str
    message: str
    field_path: str | None = None
    reason: str | None = None

    def to_schema(self) -> dict[str, str]:
        out = {"rule": self.rule, "message": self.message}
        if self.field_path:
            out["fieldPath"] = self.field_path
        if self.reason:
            out["reason"] = self.reason
        return out
