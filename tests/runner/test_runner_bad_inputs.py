"""Every input a user can get wrong ends with exit 2 and one line naming the file and the fix,
before any long computation and without a report."""

from __future__ import annotations

import json
from pathlib import Path

import paddle
import pytest
from kslim_runner.models import DetectorConfig, build_detector
from support.runs import run_fails


def test_missing_annotations(make_job, tmp_path: Path, capsys) -> None:
    job = make_job()
    (tmp_path / "data" / "val" / "annotations.json").unlink()
    line = run_fails(job, tmp_path / "out", capsys)
    assert "val/annotations.json not found" in line


def test_corrupt_annotations(make_job, tmp_path: Path, capsys) -> None:
    job = make_job()
    ann = tmp_path / "data" / "train" / "annotations.json"
    ann.write_text(ann.read_text()[:500])
    line = run_fails(job, tmp_path / "out", capsys)
    assert str(ann) in line and "not valid JSON" in line


def test_undecodable_image(make_job, tmp_path: Path, capsys) -> None:
    job = make_job()
    img = tmp_path / "data" / "val" / "images" / "000003.jpg"
    img.write_bytes(b"\xff\xd8garbage")
    line = run_fails(job, tmp_path / "out", capsys)
    assert str(img) in line and "does not decode" in line


def test_class_id_out_of_range(make_job, tmp_path: Path, capsys) -> None:
    job = make_job()
    ann = tmp_path / "data" / "train" / "annotations.json"
    doc = json.loads(ann.read_text())
    doc["annotations"][0]["category_id"] = 17
    ann.write_text(json.dumps(doc))
    line = run_fails(job, tmp_path / "out", capsys)
    assert str(ann) in line and "category_id 17" in line


def test_more_categories_than_num_classes(make_job, tmp_path: Path, capsys) -> None:
    job = make_job(model={"numClasses": 2})
    line = run_fails(job, tmp_path / "out", capsys)
    assert "3 categories but model.numClasses is 2" in line


def test_zero_annotations(make_job, tmp_path: Path, capsys) -> None:
    job = make_job()
    ann = tmp_path / "data" / "train" / "annotations.json"
    doc = json.loads(ann.read_text())
    doc["annotations"] = []
    ann.write_text(json.dumps(doc))
    line = run_fails(job, tmp_path / "out", capsys)
    assert str(ann) in line and "zero usable annotations" in line


def test_unwritable_output(make_job, tmp_path: Path, capsys) -> None:
    job = make_job()
    blocker = tmp_path / "a-file"
    blocker.write_text("x")  # a folder cannot be made under a file, even as root
    line = run_fails(job, blocker / "out", capsys)
    assert str(blocker / "out") in line and "not writable" in line


def test_mismatched_weights(make_job, tmp_path: Path, capsys) -> None:
    other = build_detector(DetectorConfig("yolov3_mobilenet_v1", 3, 96, 0.5))  # width 0.5, job says 0.25
    weights = tmp_path / "other.pdparams"
    paddle.save(other.state_dict(), str(weights))
    job = make_job(model={"weights": {"uri": "file://other.pdparams"}})
    line = run_fails(job, tmp_path / "out", capsys)
    assert str(weights) in line and "does not match yolov3_mobilenet_v1" in line and "shape" in line


def test_weights_that_are_not_a_pdparams(make_job, tmp_path: Path, capsys) -> None:
    (tmp_path / "w.pdparams").write_bytes(b"junk")
    job = make_job(model={"weights": {"uri": "file://w.pdparams"}})
    line = run_fails(job, tmp_path / "out", capsys)
    assert "w.pdparams" in line and "not a Paddle .pdparams" in line


@pytest.mark.parametrize(
    ("patch", "needle"),
    [({"model": {"numClasses": "three"}}, "numClasses"), ({"train": {"iterations": 0}}, "iterations")],
)
def test_invalid_spec(make_job, tmp_path: Path, capsys, patch: dict, needle: str) -> None:
    job = make_job(**patch)
    line = run_fails(job, tmp_path / "out", capsys)
    assert "invalid CompressionJob" in line and needle in line


def test_method_not_in_this_runner(make_job, tmp_path: Path, capsys, monkeypatch) -> None:
    from kslim_runner.pipeline import methods

    monkeypatch.setattr(methods, "load_methods", lambda: {})  # a runner image without the methods
    job = make_job(strategy=[{"prune": {"ratio": "0.3"}}])
    line = run_fails(job, tmp_path / "out", capsys)
    assert "strategy[0] is prune" in line and "does not implement" in line
