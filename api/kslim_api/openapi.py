"""Kubernetes OpenAPI extensions (x-kubernetes-*) attached to pydantic types."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from pydantic.json_schema import GetJsonSchemaHandler, JsonSchemaValue
from pydantic_core import CoreSchema


@dataclass(frozen=True, eq=False)  # hashed by identity: the extensions may hold lists
class K8sSchema:
    """Annotated marker: merge these keys into the type's JSON schema (and so into the CRD)."""

    extensions: Mapping[str, Any]

    def __get_pydantic_json_schema__(
        self, core_schema: CoreSchema, handler: GetJsonSchemaHandler
    ) -> JsonSchemaValue:
        schema = handler(core_schema)
        handler.resolve_ref_schema(schema).update(self.extensions)
        return schema


#: A list whose items are unique scalars.
LIST_SET = K8sSchema({"x-kubernetes-list-type": "set"})


def list_map(*keys: str) -> K8sSchema:
    """A list of objects identified by `keys` (server-side apply merges items by them)."""
    return K8sSchema({"x-kubernetes-list-type": "map", "x-kubernetes-list-map-keys": list(keys)})


#: An object passed through unchanged (no schema of its own).
PRESERVE_UNKNOWN = K8sSchema({"x-kubernetes-preserve-unknown-fields": True})
