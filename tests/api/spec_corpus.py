"""The corpus `kslim validate` and the API server must agree on: one YAML file per case.

It holds every hand-written case of api_cases (BAD_SPECS, GOOD_SPECS), one generated mutation per
(field, kind of mistake) of FIELD_MUTATIONS, and YAML_TEXT cases that only exist as text (unquoted
numbers, which PyYAML's YAML 1.1 and kubectl read differently). Each file is either accepted by
both or refused by both, naming the same field.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

import yaml
from api_cases import BAD_SPECS, GOOD_SPECS, BadSpec, sets, valid_job
from kslim_api.validate import KubeYAMLDumper

#: Per field: the values that must be refused, by kind of mistake. The field's own path is the one
#: both checkers must name. Fields not in valid_job() are created by the mutation.
_INT = {"string": "3", "float": 1.5, "bool": True}
_DECIMAL = {"number": 0.5, "integer": 1, "empty": "", "word": "abc", "negative": "-1"}
_ENUM = {"empty": "", "number": 1, "wrong-case": "CPU"}
_URI = {"empty": "", "number": 3, "no-scheme": "models/w.pdparams", "bare-scheme": "pvc://"}
_BOOL = {"string": "true", "number": 1}
_OBJECT = {"string": "x", "list": ["x"]}

FIELD_MUTATIONS: dict[str, dict[str, Any]] = {
    # integers: wrong types and both ends of the range
    "spec.model.numClasses": {**_INT, "low": 0, "high": 1001},
    "spec.model.inputSize": {"string": "320", "float": 320.5, "low": 32, "high": 1056},
    "spec.train.batchSize": {**_INT, "low": 0, "high": 1025},
    "spec.train.epochs": {"string": "3", "low": 0, "high": 10001},
    "spec.train.workers": {"string": "2", "low": -1, "high": 65},
    "spec.train.seed": {"string": "1", "low": -1},
    "spec.train.warmupIterations": {"low": -1, "high": 1_000_001},
    "spec.evaluation.batchSize": {"low": 0, "high": 257},
    "spec.benchmark.batchSize": {**_INT, "low": 0, "high": 65},
    "spec.benchmark.warmup": {"low": -1, "high": 10001},
    "spec.benchmark.iterations": {"low": 0, "high": 100_001},
    "spec.benchmark.threads": {"low": 0, "high": 257},
    "spec.resources.gpus": {**_INT, "low": -1, "high": 17},
    "spec.resources.workers": {**_INT, "low": 0, "high": 33},
    "spec.runPolicy.backoffLimit": {"string": "2", "high": 101},
    "spec.runPolicy.activeDeadlineSeconds": {"string": "60", "low": 0},
    "spec.runPolicy.ttlSecondsAfterFinished": {"string": "60", "low": -1},
    # decimals (strings)
    "spec.train.learningRate": {k: v for k, v in _DECIMAL.items() if k not in {"number", "word"}},
    "spec.train.weightDecay": _DECIMAL,
    "spec.train.gradClipNorm": _DECIMAL,
    "spec.train.momentum": {**_DECIMAL, "one": "1"},
    "spec.train.decayGamma": {**_DECIMAL, "zero": "0"},
    "spec.train.warmupStartFactor": {**_DECIMAL, "above-one": "1.5"},
    "spec.evaluation.scoreThreshold": _DECIMAL,
    "spec.qualityGate.maxAPDrop": {k: v for k, v in _DECIMAL.items() if k != "negative"},
    "spec.qualityGate.minSpeedup": _DECIMAL,
    "spec.qualityGate.maxLatencyMs": _DECIMAL,
    "spec.model.width": {**_DECIMAL, "three": "3"},
    "spec.strategy.0.prune.ratio": {"integer": 1, "empty": "", "negative": "-0.3"},
    # enums
    "spec.model.architecture": _ENUM,
    "spec.benchmark.device": _ENUM,
    "spec.train.optimizer": {**_ENUM, "unknown": "sgd"},
    "spec.train.lrSchedule": {**_ENUM, "unknown": "linear"},
    "spec.evaluation.iouType": {**_ENUM, "unknown": "segm"},
    "spec.template.imagePullPolicy": _ENUM,
    "spec.strategy.0.prune.criterion": {"empty": "", "number": 1},
    # URIs
    "spec.model.weights.uri": _URI,
    "spec.output.uri": _URI,
    "spec.dataset.train.images": _URI,
    "spec.dataset.val.annotations": _URI,
    # booleans
    "spec.runPolicy.suspend": _BOOL,
    "spec.benchmark.tensorrt": _BOOL,
    "spec.train.ema": _BOOL,
    # objects
    "spec.model": _OBJECT,
    "spec.train": _OBJECT,
    "spec.benchmark": _OBJECT,
    "spec.runPolicy": _OBJECT,
    "spec.resources": _OBJECT,
    "spec.qualityGate": _OBJECT,
    "spec.evaluation": _OBJECT,
    "spec.output": _OBJECT,
    "spec.model.weights": _OBJECT,
    "spec.dataset.train": _OBJECT,
}
#: Objects that get an unknown field `bogus` (named as <object>.bogus).
UNKNOWN_FIELD_IN = [
    "spec.model.weights",
    "spec.dataset",
    "spec.dataset.train",
    "spec.train",
    "spec.evaluation",
    "spec.benchmark",
    "spec.export",
    "spec.qualityGate",
    "spec.output",
    "spec.resources",
    "spec.runPolicy",
    "spec.template",
    "spec.strategy.0",
]


def server_path(dotted: str) -> str:
    """spec.strategy.0.prune -> spec.strategy[0].prune (how both checkers print it)."""
    out = ""
    for part in dotted.split("."):
        out += f"[{part}]" if part.isdigit() else (f".{part}" if out else part)
    return out


def _slug(dotted: str) -> str:
    return dotted.removeprefix("spec.").replace(".", "-").lower()


GENERATED_BAD_SPECS: list[BadSpec] = [
    *(
        BadSpec(f"gen-{_slug(path)}-{kind}", sets(**{path.replace(".", "__"): value}), server_path(path))
        for path, kinds in FIELD_MUTATIONS.items()
        for kind, value in kinds.items()
    ),
    *(
        BadSpec(f"gen-{_slug(path)}-unknown", sets(**{f"{path}.bogus".replace(".", "__"): 1}),
                server_path(f"{path}.bogus"))
        for path in UNKNOWN_FIELD_IN
    ),
]  # fmt: skip


@dataclass(frozen=True)
class CorpusFile:
    id: str
    text: str
    field: str | None
    """The field both must name; None: both accept it."""


def _dump(doc: dict[str, Any]) -> str:
    return yaml.dump(doc, Dumper=KubeYAMLDumper, sort_keys=False)


def _raw(id: str, path: str, raw: str, field: str | None) -> CorpusFile:
    """valid_job() with `raw` written verbatim (unquoted) as the value at `path`."""
    doc = valid_job(name=f"yaml-{id}")
    sets(**{path.replace(".", "__"): "__RAW__"})(doc)
    return CorpusFile(f"yaml-{id}", _dump(doc).replace("__RAW__", raw), field)


#: Plain scalars PyYAML (YAML 1.1) and kubectl (go-yaml) read differently, written unquoted.
YAML_TEXT: list[CorpusFile] = [
    _raw("learning-rate-1e-4", "spec.train.learningRate", "1e-4", "spec.train.learningRate"),
    _raw("max-latency-1e3", "spec.qualityGate.maxLatencyMs", "1e3", "spec.qualityGate.maxLatencyMs"),
    _raw("min-speedup-1-2", "spec.qualityGate.minSpeedup", "1.2", "spec.qualityGate.minSpeedup"),
    _raw("ratio-dot-3", "spec.strategy.0.prune.ratio", ".3", "spec.strategy[0].prune.ratio"),
    _raw("ratio-3e-1", "spec.strategy.0.prune.ratio", "3e-1", "spec.strategy[0].prune.ratio"),
    _raw("learning-rate-quoted", "spec.train.learningRate", '"1e-4"', None),
    _raw("max-latency-quoted", "spec.qualityGate.maxLatencyMs", "'1e3'", None),
    _raw("input-size-160-0", "spec.model.inputSize", "160.0", None),
    _raw("input-size-3-2e2", "spec.model.inputSize", "3.2e2", None),
    _raw("num-classes-1e1", "spec.model.numClasses", "1e1", None),
    _raw("num-classes-hex", "spec.model.numClasses", "0x10", None),
    _raw("input-size-320-5", "spec.model.inputSize", "320.5", "spec.model.inputSize"),
    _raw("seed-sexagesimal", "spec.train.seed", "1:20", "spec.train.seed"),
    _raw("suspend-yes", "spec.runPolicy.suspend", "yes", None),
    _raw("suspend-off", "spec.runPolicy.suspend", "off", None),
    _raw("suspend-quoted-yes", "spec.runPolicy.suspend", '"yes"', "spec.runPolicy.suspend"),
    _raw("suspend-y", "spec.runPolicy.suspend", "y", None),
    _raw("device-null", "spec.benchmark.device", "~", None),
    _raw("dataset-null", "spec.dataset", "null", "spec.dataset"),
    _raw("criterion-number", "spec.strategy.0.prune.criterion", "1e2", "spec.strategy[0].prune.criterion"),
    _raw("image-tag-date", "spec.template.image", "2024-01-01", None),
]


def _corpus() -> list[CorpusFile]:
    files = [CorpusFile(f"bad-{c.id}", _dump(c.job()), c.field) for c in BAD_SPECS if not c.server_only]
    files += [CorpusFile(f"good-{c.id}", _dump(c.job()), None) for c in GOOD_SPECS]
    seen = {json.dumps(yaml.safe_load(f.text)["spec"], sort_keys=True) for f in files}
    for case in GENERATED_BAD_SPECS:
        spec = json.dumps(case.job()["spec"], sort_keys=True)
        if spec not in seen:  # already a hand-written case
            seen.add(spec)
            files.append(CorpusFile(f"bad-{case.id}", _dump(case.job()), case.field))
    return files + YAML_TEXT


CORPUS: list[CorpusFile] = _corpus()
