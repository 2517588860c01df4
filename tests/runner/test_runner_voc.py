"""VOC XML datasets run through the same loader and evaluation (converted to COCO in prepare)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from kslim_runner.data.coco import load_coco
from kslim_runner.data.voc import category_names, read_split, to_coco
from kslim_runner.errors import UserError
from kslim_runner.run import run_command


def coco_to_voc(ann: Path, xml_dir: Path) -> None:
    """Write one VOC XML per image of a COCO file (1-based inclusive pixels, as VOC has them)."""
    doc = json.loads(ann.read_text())
    names = {c["id"]: c["name"] for c in doc["categories"]}
    xml_dir.mkdir(parents=True, exist_ok=True)
    for img in doc["images"]:
        objs = "".join(
            f"<object><name>{names[a['category_id']]}</name><difficult>0</difficult><bndbox>"
            f"<xmin>{a['bbox'][0] + 1}</xmin><ymin>{a['bbox'][1] + 1}</ymin>"
            f"<xmax>{a['bbox'][0] + a['bbox'][2]}</xmax><ymax>{a['bbox'][1] + a['bbox'][3]}</ymax>"
            "</bndbox></object>"
            for a in doc["annotations"]
            if a["image_id"] == img["id"]
        )
        (xml_dir / f"{Path(img['file_name']).stem}.xml").write_text(
            f"<annotation><filename>{img['file_name']}</filename><size><width>{img['width']}</width>"
            f"<height>{img['height']}</height><depth>3</depth></size>{objs}</annotation>"
        )


def test_voc_converts_to_the_same_boxes(tiny_data: Path, tmp_path: Path) -> None:
    coco_to_voc(tiny_data / "val" / "annotations.json", tmp_path / "xml")
    images = read_split(tmp_path / "xml")
    names = category_names([images])
    assert names == ["circle", "square", "triangle"]
    ann = to_coco(images, names, tmp_path / "val.json")
    ours = load_coco(ann, tiny_data / "val" / "images", 3)
    theirs = load_coco(tiny_data / "val" / "annotations.json", tiny_data / "val" / "images", 3)
    assert [f.name for f in ours.files] == [f.name for f in theirs.files]
    for a, b in zip(ours.boxes, theirs.boxes, strict=True):
        assert a.tolist() == b.tolist()


def test_malformed_xml_names_the_file(tmp_path: Path) -> None:
    (tmp_path / "xml").mkdir()
    bad = tmp_path / "xml" / "a.xml"
    bad.write_text("<annotation><filename>a.jpg</filename")
    with pytest.raises(UserError, match=r"a\.xml is not readable XML"):
        read_split(tmp_path / "xml")


@pytest.mark.slow
def test_a_voc_job_runs(make_job, tmp_path: Path) -> None:
    job = make_job()
    for split in ("train", "val"):
        coco_to_voc(tmp_path / "data" / split / "annotations.json", tmp_path / "data" / split / "xml")
    job = make_job(
        dataset={
            "format": "voc",
            "train": {"images": "file://data/train/images", "annotations": "file://data/train/xml"},
            "val": {"images": "file://data/val/images", "annotations": "file://data/val/xml"},
        },
        train={"iterations": 4, "batchSize": 2, "workers": 0, "warmupIterations": 1},
    )
    out = tmp_path / "out"
    assert run_command(str(job), output=str(out)) == 0
    report = json.loads((out / "report.json").read_text())
    assert 0.0 <= report["baseline"]["ap"] <= 1.0 and report["dataset"]["val"]["images"] == 8
