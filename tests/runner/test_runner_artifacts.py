"""What a user can check and compare: detections with the dataset's own category ids, sizes that
do not depend on the process, and the boxes the data preparation did not use."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from kslim_runner.data.coco import load_coco


@pytest.fixture(scope="module")
def tiny_export(tmp_path_factory: pytest.TempPathFactory) -> Path:
    import paddle
    from kslim_runner.models import DetectorConfig, build_detector
    from kslim_runner.models.export import export_detector

    paddle.seed(0)
    det = build_detector(DetectorConfig("yolov3_mobilenet_v1", 3, 96, 0.25))
    return export_detector(det, tmp_path_factory.mktemp("export") / "m", ["a", "b", "c"])


def test_the_same_weights_give_the_same_size_whatever_the_process_built_before(
    tiny_export: Path, tmp_path: Path
) -> None:
    import paddle
    from kslim_runner.measure.cost import model_cost
    from kslim_runner.models import DetectorConfig, build_detector
    from kslim_runner.models.export import export_detector

    # another model built and exported first moves paddle's name counters, as in a longer job
    export_detector(build_detector(DetectorConfig("yolov3_mobilenet_v1", 3, 96, 0.25)), tmp_path / "x", ["a"])
    paddle.seed(0)  # the same weights as tiny_export
    det = build_detector(DetectorConfig("yolov3_mobilenet_v1", 3, 96, 0.25))
    again = export_detector(det, tmp_path / "again", ["a", "b", "c"])
    assert (again / "model.pdiparams").read_bytes() == (tiny_export / "model.pdiparams").read_bytes()
    a, b = model_cost(tiny_export), model_cost(again)
    assert a["sizeBytes"] == (tiny_export / "model.pdiparams").stat().st_size
    assert a["sizeBytes"] == b["sizeBytes"] and a["params"] == b["params"]
    assert a["programBytes"] != b["programBytes"]  # the .pdmodel differs: why it is not the size


def _remap_categories(tiny_data: Path, tmp_path: Path, ids: dict[int, int]) -> Path:
    doc = json.loads((tiny_data / "val" / "annotations.json").read_text())
    for c in doc["categories"]:
        c["id"] = ids[c["id"]]
    for a in doc["annotations"]:
        a["category_id"] = ids[a["category_id"]]
    doc["annotations"][0]["iscrowd"] = 1
    doc["annotations"][1]["bbox"][2] = 0.5
    path = tmp_path / "val.json"
    path.write_text(json.dumps(doc))
    return path


def test_detections_carry_the_dataset_category_ids_and_rescore_to_the_reported_ap(
    tiny_export: Path, tiny_data: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import kslim_runner.measure.coco_eval as coco_eval
    import numpy as np
    from kslim_runner.measure.coco_eval import coco_stats, evaluate_model

    def three_boxes(predictor, image, im_shape, scale):  # class indices 0, 1, 2 on every image
        n = image.shape[0]
        one = [[c, 0.9 - 0.1 * c, 10 + c, 10, 60 + c, 70] for c in range(3)]
        return np.asarray(one * n, np.float32), np.full(n, 3, np.int32), None

    # an untrained detector finds nothing; the mapping is what is under test
    monkeypatch.setattr(coco_eval, "run_detector_masks", three_boxes)

    ann = _remap_categories(tiny_data, tmp_path, {1: 90, 2: 7, 3: 20})
    index = load_coco(ann, tiny_data / "val" / "images", 3)
    assert index.category_ids == [7, 20, 90]  # class index i -> the i-th smallest category id
    out = tmp_path / "stages" / "baseline" / "detections.json"
    result = evaluate_model(tiny_export, index, batch_size=4, score_threshold=0.0, detections_out=out)
    dets = json.loads(out.read_text())
    assert len(dets) == result.detections > 0
    assert {d["category_id"] for d in dets} == {7, 20, 90} and len(dets) == 3 * 8
    assert [d["category_id"] for d in dets[:3]] == [7, 20, 90]
    assert {d["image_id"] for d in dets} <= set(index.image_ids)
    assert coco_stats(ann, dets)["ap"] == pytest.approx(result.ap, abs=1e-9)


def test_crowd_and_degenerate_boxes_are_counted_in_the_prepare_line(tiny_data: Path, tmp_path: Path) -> None:
    from kslim_runner.pipeline.prepare import data_summary

    ann = _remap_categories(tiny_data, tmp_path, {1: 1, 2: 2, 3: 3})
    index = load_coco(ann, tiny_data / "val" / "images", 3)
    total = len(json.loads(ann.read_text())["annotations"])
    assert (index.dropped_crowd, index.dropped_small) == (1, 1)
    assert index.num_annotations == total - 2
    text = data_summary(index)
    assert text == f"8 images, {total - 2} boxes (1 crowd box and 1 box of 1 px or less not used)"
