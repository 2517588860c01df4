"""The CompressionJob schema without a cluster: examples, every bad spec, the generated CRD and docs."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import yaml
from api_cases import BAD_SPECS, EXAMPLES, GOOD_SPECS, REPO_ROOT, BadSpec, GoodSpec, valid_job
from kslim_api import crdgen, docgen, strategy_summary
from kslim_api.compressionjob import CompressionJob, CompressionJobSpec, immutable_rules
from kslim_api.status import CompressionJobStatus, ConditionType
from kslim_api.v1alpha1 import ModelSpec, StrategyStep
from kslim_api.validate import InvalidJobError, load_job

# --- examples and bad specs ---------------------------------------------------------------------------


def test_there_is_an_example_per_seed_method() -> None:
    names = {p.stem for p in EXAMPLES}
    assert {
        "quickstart",
        "prune-l1norm",
        "prune-fpgm",
        "qat",
        "qat-pact",
        "ptq-inference-model",
        "distill",
        "distill-prune",
        "prune-qat",
        "slimconfig",
    } <= names


@pytest.mark.parametrize("path", EXAMPLES, ids=lambda p: p.stem)
def test_example_is_valid(path: Path) -> None:
    job = load_job(path)
    assert job.spec.output is not None, "examples run on a cluster: they need spec.output"
    assert job.spec.resolved_steps() or path.stem == "quickstart-pretrain"  # strategy: [] trains only


def test_quickstart_fits_a_small_cpu() -> None:
    spec = load_job(REPO_ROOT / "examples" / "quickstart.yaml").spec
    assert spec.dataset.format == "synthetic"
    assert spec.model.architecture is not None and spec.model.architecture.value == "yolov3_mobilenet_v1"
    assert spec.model.width == "0.25" and spec.model.input_size in (128, 160)
    assert [s.method for s in spec.resolved_steps()] == ["prune"]
    assert spec.resolved_steps()[0].prune is not None and spec.resolved_steps()[0].prune.criterion == "fpgm"
    assert spec.benchmark.device == "cpu" and spec.resources.gpus == 0


def test_example_summaries() -> None:
    summaries = {p.stem: strategy_summary(load_job(p).spec.resolved_steps()) for p in EXAMPLES}
    assert summaries["prune-qat"] == "prune(fpgm 0.3) > qat"
    assert summaries["qat-pact"] == "qat(pact)"
    assert summaries["distill-prune"] == "prune(l1_norm 0.6) > distill(yolov3_darknet53)"
    assert summaries["ptq-inference-model"] == "ptq(hist)"
    assert summaries["prune-l1norm"] == "prune(l1_norm -34% flops sensitivity)"


def test_bad_spec_table_is_big_and_distinct() -> None:
    ids = [c.id for c in BAD_SPECS]
    assert len(ids) == len(set(ids))
    jobs = [json.dumps(c.job()["spec"], sort_keys=True) for c in BAD_SPECS]
    assert len(set(jobs)) == len(jobs), "two bad specs are the same spec"
    assert len(BAD_SPECS) >= 30


def test_the_base_of_the_bad_specs_is_valid() -> None:
    load_job(valid_job())


@pytest.mark.parametrize("case", GOOD_SPECS, ids=lambda c: c.id)
def test_legal_corner_is_accepted(case: GoodSpec) -> None:
    load_job(case.job())


@pytest.mark.parametrize("case", [c for c in BAD_SPECS if not c.server_only], ids=lambda c: c.id)
def test_bad_spec_is_rejected_naming_the_field(case: BadSpec) -> None:
    with pytest.raises(InvalidJobError) as info:
        load_job(case.job())
    paths = [e.path for e in info.value.errors]
    assert any(
        p == case.field or case.field in e.message for p, e in zip(paths, info.value.errors, strict=True)
    ), f"expected an error on {case.field}, got {[str(e) for e in info.value.errors]}"


@pytest.mark.parametrize("case", [c for c in BAD_SPECS if c.server_only], ids=lambda c: c.id)
def test_server_only_rules_pass_offline(case: BadSpec) -> None:
    load_job(case.job())


# --- model behaviour --------------------------------------------------------------------------------


def test_python_construction_by_field_name_still_works() -> None:
    model = ModelSpec(architecture="yolov3_mobilenet_v1", num_classes=3, input_size=160)  # type: ignore[arg-type]
    assert model.num_classes == 3


def test_job_files_must_use_the_api_names() -> None:
    doc = valid_job()
    doc["spec"]["model"]["input_size"] = 320
    with pytest.raises(InvalidJobError, match=r"spec\.model\.input_size: unknown field"):
        load_job(doc)


def test_decimals_as_numbers_get_a_hint() -> None:
    doc = valid_job()
    doc["spec"]["strategy"][0]["prune"]["ratio"] = 0.3
    with pytest.raises(InvalidJobError) as info:
        load_job(doc)
    assert 'write "0.3"' in str(info.value)


def test_pattern_errors_are_in_words() -> None:
    doc = valid_job()
    doc["spec"]["strategy"][0]["prune"]["ratio"] = "1.5"
    with pytest.raises(InvalidJobError) as info:
        load_job(doc)
    (err,) = info.value.errors
    assert err.path == "spec.strategy[0].prune.ratio"
    assert "strictly between 0 and 1" in err.message and "1.5" in err.message


def test_every_cross_field_problem_of_one_object_is_reported() -> None:
    doc = valid_job()
    doc["spec"]["benchmark"] = {"device": "gpu", "tensorrt": True, "precisions": ["fp32"]}
    with pytest.raises(InvalidJobError) as info:
        load_job(doc)
    assert {e.path for e in info.value.errors} == {"spec.benchmark.device", "spec.benchmark.tensorrt"}


def test_load_job_accepts_path_text_and_mapping(tmp_path: Path) -> None:
    text = yaml.safe_dump(valid_job())
    path = tmp_path / "job.yaml"
    path.write_text(text)
    assert load_job(path) == load_job(str(path)) == load_job(text) == load_job(valid_job())


def test_status_from_kubectl_get_is_accepted() -> None:
    doc = valid_job()
    doc["metadata"].update(uid="u", generation=2, creationTimestamp="2024-01-01T00:00:00Z")
    doc["status"] = {
        "startTime": "2024-01-01T00:00:00Z",
        "conditions": [
            {
                "type": "Accepted",
                "status": "True",
                "reason": "JobCreated",
                "message": "",
                "lastTransitionTime": "2024-01-01T00:00:00Z",
                "observedGeneration": 2,
            }
        ],
    }
    job = load_job(yaml.safe_dump(doc).replace("'2024-01-01T00:00:00Z'", "2024-01-01T00:00:00Z"))
    assert job.status is not None and job.status.start_time == "2024-01-01T00:00:00Z"
    accepted = job.status.condition(ConditionType.ACCEPTED)
    assert accepted is not None and accepted.status == "True"


def test_termination_message_of_the_contract_fits_the_status_model() -> None:
    """docs/contracts.md: baseline/result/delta/qualityGate/artifacts travel into the status as they are."""
    message = {
        "baseline": {
            "ap": 0.31,
            "ap50": 0.62,
            "gflops": 1.2,
            "params": 1234567,
            "sizeBytes": 4900000,
            "latencyMs": {"fp32": {"p50": 3.1, "p90": 3.4, "mean": 3.2}},
        },
        "result": {
            "ap": 0.306,
            "gflops": 0.7,
            "params": 700000,
            "sizeBytes": 2800000,
            "int8SizeBytes": 1300000,
            "latencyMs": {"fp32": {"p50": 2.0}, "int8": {"p50": 1.2}},
        },
        "delta": {"ap": -0.004, "gflopsRatio": 0.62, "paramsRatio": 0.6, "sizeRatio": 0.3, "speedup": 2.1},
        "qualityGate": {"passed": True, "message": "AP drop 0.4 <= 1.0"},
        "artifacts": {
            "model": "pvc://artifacts/jobs/x/model",
            "report": "pvc://artifacts/jobs/x/report.json",
        },
    }
    status = CompressionJobStatus.model_validate(message, by_alias=True, by_name=False)
    assert status.model_dump(mode="json", by_alias=True, exclude_none=True) == {**message, "conditions": []}


def test_strategy_summary() -> None:
    steps = [
        StrategyStep.model_validate({"distill": {"teacher": {"architecture": "yolov3_darknet53"}}}),
        StrategyStep.model_validate({"prune": {"criterion": "l1_norm", "ratios": {"a": "0.5", "b": "0.7"}}}),
        StrategyStep.model_validate({"ptq": {"algo": "KL"}}),
    ]
    assert strategy_summary(steps) == "distill(yolov3_darknet53) > prune(l1_norm 2 params) > ptq(KL)"
    assert strategy_summary([]) == "baseline"


# --- the generated CRD -------------------------------------------------------------------------------


def _crd_schema() -> dict[str, Any]:
    crd = yaml.safe_load((REPO_ROOT / "crds" / crdgen.CRD_FILE).read_text())
    (version,) = crd["spec"]["versions"]
    schema: dict[str, Any] = version["schema"]["openAPIV3Schema"]
    return schema


def test_committed_crd_is_generated_from_the_model() -> None:
    committed = (REPO_ROOT / "crds" / crdgen.CRD_FILE).read_text()
    assert committed == crdgen.render(), "crds/ differs from the model: run `make crds`"


def test_committed_api_reference_is_generated_from_the_model() -> None:
    current = (REPO_ROOT / "docs" / "api.md").read_text()
    assert current == docgen.render(current), "docs/api.md differs: run `python -m kslim_api.docgen`"


def _walk(node: dict[str, Any], path: str) -> Any:
    yield path, node
    for name, child in node.get("properties", {}).items():
        yield from _walk(child, f"{path}.{name}")
    if isinstance(node.get("items"), dict):
        yield from _walk(node["items"], f"{path}[]")
    if isinstance(node.get("additionalProperties"), dict):
        yield from _walk(node["additionalProperties"], f"{path}.*")


def test_crd_spec_follows_the_api_conventions() -> None:
    spec = _crd_schema()["properties"]["spec"]
    for path, node in _walk(spec, "spec"):
        assert node.get("description"), f"{path}: no description (kubectl explain would be empty)"
        assert node.get("type") != "number", f"{path}: floats are not allowed in spec"
        assert "$ref" not in node and "anyOf" not in node and "title" not in node, path
        if node.get("type") == "string" and "enum" not in node:
            assert "maxLength" in node, f"{path}: unbounded string (CEL cost)"
        if node.get("type") == "array":
            assert "maxItems" in node, f"{path}: unbounded list (CEL cost)"
        if node.get("type") == "object" and "additionalProperties" in node:
            assert "maxProperties" in node, f"{path}: unbounded map (CEL cost)"


def test_crd_status_has_conditions_as_a_map_keyed_by_type() -> None:
    status = _crd_schema()["properties"]["status"]
    conditions = status["properties"]["conditions"]
    assert conditions["x-kubernetes-list-type"] == "map"
    assert conditions["x-kubernetes-list-map-keys"] == ["type"]
    assert set(conditions["items"]["required"]) >= {"type", "status", "reason", "lastTransitionTime"}
    for key in (
        "phase",
        "stage",
        "progress",
        "baseline",
        "result",
        "delta",
        "artifacts",
        "attempts",
        "startTime",
        "completionTime",
        "observedGeneration",
        "message",
        "qualityGate",
        "strategySummary",
    ):
        assert key in status["properties"], key


def test_crd_printer_columns_point_at_status_fields() -> None:
    crd = yaml.safe_load((REPO_ROOT / "crds" / crdgen.CRD_FILE).read_text())
    (version,) = crd["spec"]["versions"]
    columns = {c["name"]: c["jsonPath"] for c in version["additionalPrinterColumns"]}
    assert list(columns)[:8] == [
        "Phase",
        "Strategy",
        "Stage",
        "Progress",
        "Baseline AP",
        "AP",
        "Speedup",
        "Age",
    ]
    status = _crd_schema()["properties"]["status"]
    for name, json_path in columns.items():
        if json_path.startswith(".status."):
            node = status
            for part in json_path.split(".")[2:]:
                node = node["properties"][part]
            assert node, name
    assert crd["spec"]["names"]["categories"] == ["kslim"]
    assert "cj" not in crd["spec"]["names"]["shortNames"], "cj is CronJob's short name"
    assert version["subresources"] == {"status": {}}


def test_every_spec_field_but_suspend_is_frozen_once_started() -> None:
    frozen = {r.field_path for r in immutable_rules()}
    assert ".spec.model" in frozen and ".spec.strategy" in frozen and ".spec.runPolicy.backoffLimit" in frozen
    assert ".spec.runPolicy.suspend" not in frozen and ".spec.runPolicy" not in frozen
    fields = {f".spec.{info.alias or name}" for name, info in CompressionJobSpec.model_fields.items()}
    assert fields - {".spec.runPolicy"} <= frozen
    for rule in immutable_rules():
        assert "has(oldSelf.status.startTime)" in rule.rule


def test_api_package_never_imports_paddle() -> None:
    import subprocess
    import sys

    code = (
        "import sys, kslim_api.validate, kslim_api.crdgen, kslim_api.docgen; print('paddle' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


def test_compression_job_model_round_trips() -> None:
    job = load_job(valid_job())
    again = CompressionJob.model_validate(job.model_dump(mode="json", by_alias=True, exclude_none=True))
    assert again == job
