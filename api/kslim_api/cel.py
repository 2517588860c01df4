"""CEL validation rules shared by the pydantic models and the generated CRD.

A model lists its cross-field rules as `CelRule`s; the CRD generator writes them into the
schema as `x-kubernetes-validations`, and the model's pydantic validator raises the same
`message` when its Python check fails. One message text, two enforcers: the API server and
`kslim validate` say the same thing about the same mistake.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

from pydantic import BaseModel
from pydantic.json_schema import GetJsonSchemaHandler, JsonSchemaValue
from pydantic_core import CoreSchema

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


class CelRules(BaseModel):
    """Mixin for models: `cel_rules` declared on a class (not inherited) end up in its JSON schema."""

    cel_rules: ClassVar[tuple[CelRule, ...]] = ()

    @classmethod
    def __get_pydantic_json_schema__(
        cls, core_schema: CoreSchema, handler: GetJsonSchemaHandler
    ) -> JsonSchemaValue:
        schema = handler(core_schema)
        rules: tuple[CelRule, ...] = cls.__dict__.get("cel_rules", ())
        if rules:
            target: dict[str, Any] = handler.resolve_ref_schema(schema)
            target[CEL_KEY] = [r.to_schema() for r in rules]
        return schema


def has(field: str) -> str:
    """CEL presence test of a field of `self`."""
    return f"has(self.{field})"
