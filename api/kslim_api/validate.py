"""Offline validation of CompressionJob files and PaddleDetection slim configs (`kslim validate`).

`load_job()` is the one way to turn a job file, YAML text or an already parsed CR body into a
`CompressionJob`; every user mistake comes out as `InvalidJobError` (never a traceback).
"""

from __future__ import annotations

import datetime
import json
import os
import re
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, ClassVar, TextIO

import yaml
from pydantic import ValidationError

from kslim_api.compressionjob import OUTPUT_REQUIRED, CompressionJob
from kslim_api.contract import EXIT_OK, EXIT_USER
from kslim_api.errors import FieldError, field_errors
from kslim_api.podpolicy import service_account_message, service_account_ok
from kslim_api.slimconfig import SlimConfigError, SlimConversion, convert_slim_config
from kslim_api.summary import strategy_summary
from kslim_api.v1alpha1 import StrategyStep

JobSource = str | os.PathLike[str] | Mapping[str, Any]


class InvalidJobError(ValueError):
    """A job (or slim config) a user must fix; `errors` says where and how."""

    def __init__(self, errors: list[FieldError], source: str = "") -> None:
        self.errors = errors
        self.source = source
        super().__init__("; ".join(str(e) for e in errors))


def _read(source: str | os.PathLike[str]) -> tuple[str, str]:
    """(text, name). A str holding a newline is YAML text; anything else is a file path."""
    if isinstance(source, str) and "\n" in source:
        return source, "<text>"
    path = Path(source)
    try:
        return path.read_text(encoding="utf-8"), str(path)
    except FileNotFoundError:
        raise InvalidJobError([FieldError("", "no such file")], str(path)) from None
    except IsADirectoryError:
        raise InvalidJobError([FieldError("", "is a directory, not a file")], str(path)) from None
    except UnicodeDecodeError:
        raise InvalidJobError([FieldError("", "not UTF-8 text")], str(path)) from None
    except OSError as exc:
        raise InvalidJobError([FieldError("", f"cannot read ({exc.strerror})")], str(path)) from None


# --- YAML as kubectl reads it ------------------------------------------------------------------------
# kubectl (sigs.k8s.io/yaml, go-yaml v2) and PyYAML (YAML 1.1) disagree on some plain scalars:
# `1e-4` and `1e3` are numbers to kubectl and strings to PyYAML, `y`/`n` booleans to kubectl only,
# `1:20` an integer (sexagesimal) and `2024-01-01` a date to PyYAML only. Job files are read the
# way kubectl reads them, so `kslim validate` and the API server see the same values.
_FLOAT = "tag:yaml.org,2002:float"
_INT = "tag:yaml.org,2002:int"
_BOOL = "tag:yaml.org,2002:bool"
_TIMESTAMP = "tag:yaml.org,2002:timestamp"
_BOOLS = "y|Y|yes|Yes|YES|n|N|no|No|NO|true|True|TRUE|false|False|FALSE|on|On|ON|off|Off|OFF"
_INTS = r"[-+]?0b[0-1_]+|[-+]?0o?[0-7_]+|[-+]?(?:0|[1-9][0-9_]*)|[-+]?0x[0-9a-fA-F_]+"
_FLOATS = (
    r"(?=[^.eE]*[.eE])[-+]?(?:[0-9][0-9_]*(?:\.[0-9_]*)?|\.[0-9_]+)(?:[eE][-+]?[0-9]+)?"
    r"|[-+]?\.(?:inf|Inf|INF)|\.(?:nan|NaN|NAN)"
)
_KUBE_SCALARS = (
    (_BOOL, re.compile(f"^(?:{_BOOLS})$"), "yYnNtTfFoO"),
    (_INT, re.compile(f"^(?:{_INTS})$"), "-+0123456789"),
    (_FLOAT, re.compile(f"^(?:{_FLOATS})$"), "-+0123456789."),
)


def _kube_resolvers(cls: type[yaml.SafeLoader] | type[yaml.SafeDumper]) -> None:
    replaced = {_FLOAT, _INT, _BOOL, _TIMESTAMP}
    cls.yaml_implicit_resolvers = {
        first: [(tag, rx) for tag, rx in resolvers if tag not in replaced]
        for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
    }
    for tag, regexp, first in _KUBE_SCALARS:
        cls.add_implicit_resolver(tag, regexp, list(first))


class KubeYAMLLoader(yaml.SafeLoader):
    """PyYAML's safe loader reading plain scalars the way kubectl does."""

    bool_values: ClassVar[dict[str, bool]] = {**yaml.SafeLoader.bool_values, "y": True, "n": False}


class KubeYAMLDumper(yaml.SafeDumper):
    """PyYAML's safe dumper quoting every string kubectl would read as something else (`"1e-4"`)."""


_kube_resolvers(KubeYAMLLoader)
_kube_resolvers(KubeYAMLDumper)


def _as_the_api_server_sees_it(value: Any) -> Any:
    """`160.0` is an integer to the API server (JSON has one number type), and a field set to null is
    pruned before defaulting (no field of the schema is nullable); pydantic's strict mode does neither."""
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, dict):
        return {k: _as_the_api_server_sees_it(v) for k, v in value.items() if v is not None}
    if isinstance(value, list):
        return [_as_the_api_server_sees_it(v) for v in value]
    return value


def _parse_yaml(text: str, name: str) -> Any:
    try:
        docs = [d for d in yaml.load_all(text, Loader=KubeYAMLLoader) if d is not None]
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"line {mark.line + 1}, column {mark.column + 1}: " if mark else ""
        problem = getattr(exc, "problem", None) or str(exc)
        raise InvalidJobError([FieldError("", f"not valid YAML: {where}{problem}")], name) from None
    if len(docs) != 1:
        raise InvalidJobError([FieldError("", f"expected one YAML document, found {len(docs)}")], name)
    return docs[0]


def _json_default(value: Any) -> Any:
    """YAML turns unquoted timestamps and dates into datetime objects; the API has strings."""
    if isinstance(value, (datetime.datetime, datetime.date)):
        text = value.isoformat()
        return text.replace("+00:00", "Z") if isinstance(value, datetime.datetime) else text
    raise TypeError(f"{type(value).__name__} is not a JSON value")


def load_job(source: JobSource) -> CompressionJob:
    """A CompressionJob from a file path, YAML text (a str with a newline) or a parsed CR body.

    Field names must be the API's camelCase ones, as on the API server. Raises InvalidJobError.
    """
    if isinstance(source, Mapping):
        data: Any = dict(source)
        name = "<object>"
    else:
        text, name = _read(source)
        data = _parse_yaml(text, name)
    if not isinstance(data, dict):
        raise InvalidJobError(
            [FieldError("", f"a CompressionJob is a YAML mapping, not {type(data).__name__}")], name
        )
    try:
        # Strict, through JSON: the same types the API server accepts ("3" is not an integer, "yes"
        # not a boolean) while enums still take their string values.
        as_json = json.dumps(_as_the_api_server_sees_it(data), default=_json_default)
        return CompressionJob.model_validate_json(as_json, strict=True, by_alias=True, by_name=False)
    except ValidationError as exc:
        raise InvalidJobError(field_errors(exc), name) from None


def load_slim_config(source: str | os.PathLike[str]) -> SlimConversion:
    """A PaddleDetection slim config file (or YAML text) converted to steps. Raises InvalidJobError."""
    text, name = _read(source)
    location = None if name == "<text>" else Path(name).resolve().as_uri()
    try:
        conv = convert_slim_config(text, location)
    except SlimConfigError as exc:
        raise InvalidJobError([FieldError("", p) for p in exc.problems], name) from None
    missing = [uri for uri in conv.bases if uri.startswith("file://") and not Path(uri[7:]).is_file()]
    if missing:
        raise InvalidJobError(
            [
                FieldError("", f"_BASE_: {uri[7:]} not found (give the slim config inside its configs/ tree)")
                for uri in missing
            ],
            name,
        )
    return conv


def _steps_json(steps: list[StrategyStep] | tuple[StrategyStep, ...]) -> list[dict[str, Any]]:
    return [s.model_dump(mode="json", by_alias=True, exclude_none=True) for s in steps]


def resolved_job(job: CompressionJob) -> dict[str, Any]:
    """What `kslim validate` prints for a valid job: the steps the runner will run."""
    steps = job.spec.resolved_steps()
    weights = job.spec.resolved_weights()
    out: dict[str, Any] = {
        "apiVersion": job.api_version,
        "kind": job.kind,
        "name": job.metadata.name,
        "source": "slimConfig" if job.spec.slim_config is not None else "strategy",
        "summary": strategy_summary(steps),
        "strategy": _steps_json(steps),
    }
    if weights is not None:
        out["weights"] = weights.uri
    return out


def _print_errors(err: InvalidJobError, what: str, out: TextIO) -> None:
    n = len(err.errors)
    print(f"{err.source}: invalid {what} ({n} error{'s' if n != 1 else ''}):", file=out)
    for e in err.errors:
        print(f"  {e}", file=out)


def check_installation(job: CompressionJob, allowed_service_accounts: Sequence[str] = ()) -> None:
    """What depends on the installation, not the schema: the service accounts it lets the runner
    use (the operator and the chart's admission policy print the same message)."""
    account = job.spec.template.service_account_name
    if not service_account_ok(account, allowed_service_accounts):
        raise InvalidJobError(
            [
                FieldError(
                    "spec.template.serviceAccountName", service_account_message(allowed_service_accounts)
                )
            ]
        )


def validate_command(
    path: str, slim_config: bool = False, allowed_service_accounts: Sequence[str] = ()
) -> int:
    """`kslim validate FILE [--slim-config] [--allow-service-account NAME]...`: 0 and the resolved
    strategy as JSON on stdout, or 2 and every error with its field path on stderr."""
    try:
        if slim_config:
            conv = load_slim_config(path)
            result: dict[str, Any] = {
                "slim": conv.slim,
                "summary": strategy_summary(conv.steps),
                "strategy": _steps_json(conv.steps),
            }
            if conv.weights is not None:
                result["weights"] = conv.weights
            notes = list(conv.notes)
        else:
            job = load_job(path)
            try:
                check_installation(job, allowed_service_accounts)
            except InvalidJobError as err:
                err.source = str(path)
                raise
            result = resolved_job(job)
            notes = list(job.spec.slim_conversion().notes) if job.spec.slim_config else []
            if job.spec.output is None:
                notes.append(
                    f"spec.output is not set (fine for `kslim run --output`): {OUTPUT_REQUIRED.message}"
                )
    except InvalidJobError as err:
        _print_errors(err, "slim config" if slim_config else "CompressionJob", sys.stderr)
        return EXIT_USER
    for note in notes:
        print(f"note: {note}", file=sys.stderr)
    print(json.dumps(result, indent=2))
    return EXIT_OK
