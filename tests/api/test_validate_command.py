"""`kslim validate FILE [--slim-config]`: exit codes, output, and never a traceback for a user error."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from api_cases import REPO_ROOT, valid_job
from kslim_api.contract import EXIT_OK, EXIT_USER
from kslim_api.validate import validate_command


def write(tmp_path: Path, name: str, text: str) -> str:
    path = tmp_path / name
    path.write_text(text)
    return str(path)


def test_valid_job_prints_the_resolved_strategy(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = write(tmp_path, "job.yaml", yaml.safe_dump(valid_job()))
    assert validate_command(path, slim_config=False) == EXIT_OK
    out = json.loads(capsys.readouterr().out)
    assert out["name"] == "valid" and out["source"] == "strategy"
    assert out["summary"] == "prune(fpgm 0.3)"
    assert out["strategy"][0]["prune"]["ratio"] == "0.3"
    assert out["strategy"][0]["prune"]["fineTune"] == {}
    assert out["weights"] == "pvc://models/yolov3_mbv1.pdparams"


def test_missing_output_is_fine_locally_but_noted(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    doc = valid_job()
    del doc["spec"]["output"]
    assert validate_command(write(tmp_path, "job.yaml", yaml.safe_dump(doc)), slim_config=False) == EXIT_OK
    err = capsys.readouterr().err
    assert (
        "note: spec.output is not set (fine for `kslim run --output`): spec.output is required on a cluster"
        in err
    )


def test_invalid_job_prints_every_error_with_its_path(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    doc = valid_job()
    doc["spec"]["strategy"] = [{"prune": {"ratio": "0.3"}}, {"prune": {"ratio": "1.5"}}]
    doc["spec"]["model"]["inputSize"] = 300
    doc["spec"]["template"] = {"imagePullPolicy": "Sometimes"}
    path = write(tmp_path, "bad.yaml", yaml.safe_dump(doc))
    assert validate_command(path, slim_config=False) == EXIT_USER
    captured = capsys.readouterr()
    assert captured.out == ""
    lines = captured.err.splitlines()
    assert lines[0] == f"{path}: invalid CompressionJob (3 errors):"
    assert any(line.startswith("  spec.strategy[1].prune.ratio: must be a decimal") for line in lines)
    assert any(line.startswith("  spec.model.inputSize: ") for line in lines)
    assert any(line.startswith("  spec.template.imagePullPolicy: ") for line in lines)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("apiVersion: [\n", "not valid YAML: line 2"),
        ("- a\n- b\n", "a CompressionJob is a YAML mapping, not list"),
        ("kind: CompressionJob\n---\nkind: CompressionJob\n", "expected one YAML document, found 2"),
        ("", "expected one YAML document, found 0"),
        ("kind: CompressionJob\n", "apiVersion: required"),
        (
            "apiVersion: kslim.dev/v1\nkind: Job\nspec: {}\n",
            "apiVersion: Input should be 'kslim.dev/v1alpha1'",
        ),
    ],
)
def test_broken_files_are_user_errors(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], text: str, message: str
) -> None:
    path = write(tmp_path, "job.yaml", text)
    assert validate_command(path, slim_config=False) == EXIT_USER
    assert message in capsys.readouterr().err


def test_missing_file_and_directory(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert validate_command(str(tmp_path / "nope.yaml"), slim_config=False) == EXIT_USER
    assert "no such file" in capsys.readouterr().err
    assert validate_command(str(tmp_path), slim_config=False) == EXIT_USER
    assert "is a directory" in capsys.readouterr().err


def test_binary_file_is_a_user_error(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "weights.pdparams"
    path.write_bytes(b"\x80\x81\xff\x00")
    assert validate_command(str(path), slim_config=False) == EXIT_USER
    assert "not UTF-8 text" in capsys.readouterr().err


def test_slim_config_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    text = "slim: QAT\nQAT:\n  quant_config: {activation_preprocess_type: PACT}\n  print_model: true\n"
    assert validate_command(write(tmp_path, "qat.yml", text), slim_config=True) == EXIT_OK
    captured = capsys.readouterr()
    out = json.loads(captured.out)
    assert out["slim"] == "QAT" and out["summary"] == "qat(pact)"
    assert "note: QAT.print_model: ignored" in captured.err


def test_bad_slim_config_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    text = "slim: QAT\nQAT: {quant_config: {}}\nTrainReadr: {batch_size: 8}\n"
    assert validate_command(write(tmp_path, "qat.yml", text), slim_config=True) == EXIT_USER
    err = capsys.readouterr().err
    assert "invalid slim config (1 error)" in err and "TrainReadr: unknown section" in err
    assert "nearest known key: TrainReader" in err


def test_a_job_file_given_as_slim_config_is_explained(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = write(tmp_path, "job.yaml", yaml.safe_dump(valid_job()))
    assert validate_command(path, slim_config=True) == EXIT_USER
    assert "slim: None is not supported" in capsys.readouterr().err


def test_cli_end_to_end_without_traceback(tmp_path: Path) -> None:
    """The real `kslim` entry point: exit 2 and no traceback for a user error; exit 0 on an example."""
    bad = write(
        tmp_path, "bad.yaml", "apiVersion: kslim.dev/v1alpha1\nkind: CompressionJob\nspec: {model: 3}\n"
    )
    cli = [sys.executable, "-m", "kslim_runner.cli", "validate"]
    result = subprocess.run([*cli, bad], capture_output=True, text=True, check=False)
    assert result.returncode == 2, result.stderr
    assert "Traceback" not in result.stderr and "spec.model:" in result.stderr
    example = str(REPO_ROOT / "examples" / "slimconfig.yaml")
    result = subprocess.run([*cli, example], capture_output=True, text=True, check=False)
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["source"] == "slimConfig"
