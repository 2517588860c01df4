"""The evaluator's faster COCOeval.evaluateImg returns exactly what pycocotools' own returns, on
detections built to hit every branch of the matching: crowds, ground truths outside an area range,
score ties, several detections per ground truth, images without detections or without objects."""

from __future__ import annotations

import contextlib
import io
import json
from pathlib import Path

import numpy as np
import pytest
from kslim_runner.measure.coco_eval import _cocoeval_class, coco_stats
from pycocotools.coco import COCO
from pycocotools.cocoeval import COCOeval


def _dataset(rng: np.random.Generator, images: int, cats: int) -> tuple[dict, list[dict]]:
    """A COCO ground truth with crowds and tiny/huge boxes, and detections near and far from it."""
    gt = {
        "images": [],
        "annotations": [],
        "categories": [{"id": c + 1, "name": f"c{c}"} for c in range(cats)],
    }
    dets: list[dict] = []
    for i in range(images):
        gt["images"].append({"id": i + 1, "width": 640, "height": 640, "file_name": f"{i}.jpg"})
        for _ in range(int(rng.integers(0, 6)) if i % 7 else 0):  # every 7th image has no objects
            w, h = (float(v) for v in rng.choice([8, 24, 64, 150, 400], 2))
            x, y = (float(v) for v in rng.uniform(0, 200, 2))
            gt["annotations"].append(
                {
                    "id": len(gt["annotations"]) + 1,
                    "image_id": i + 1,
                    "category_id": int(rng.integers(1, cats + 1)),
                    "bbox": [x, y, w, h],
                    "area": w * h,
                    "iscrowd": int(rng.random() < 0.1),
                }
            )
            for _ in range(int(rng.integers(0, 4))):  # near-duplicates compete for the same box
                jitter = rng.normal(0, 0.15 * min(w, h), 4)
                dets.append(
                    {
                        "image_id": i + 1,
                        "category_id": gt["annotations"][-1]["category_id"],
                        "bbox": [
                            x + jitter[0],
                            y + jitter[1],
                            max(1.0, w + jitter[2]),
                            max(1.0, h + jitter[3]),
                        ],
                        "score": round(float(rng.choice([0.9, 0.5, rng.random()])), 2),  # ties
                    }
                )
        if i % 5:  # every 5th image has no detections
            for _ in range(int(rng.integers(0, 30))):
                x, y, w, h = (float(v) for v in rng.uniform(1, 300, 4))
                dets.append(
                    {
                        "image_id": i + 1,
                        "category_id": int(rng.integers(1, cats + 1)),
                        "bbox": [x, y, w, h],
                        "score": round(float(rng.random()), 3),
                    }
                )
    return gt, dets


def _run(cls: type, gt: COCO, dets: list[dict]) -> COCOeval:
    with contextlib.redirect_stdout(io.StringIO()):
        ev = cls(gt, gt.loadRes(dets), iouType="bbox")
        ev.evaluate()
        ev.accumulate()
        ev.summarize()
    return ev


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_fast_evaluate_img_is_identical_to_pycocotools(tmp_path: Path, seed: int) -> None:
    gt_doc, dets = _dataset(np.random.default_rng(seed), images=60, cats=3)
    path = tmp_path / "gt.json"
    path.write_text(json.dumps(gt_doc))
    with contextlib.redirect_stdout(io.StringIO()):
        gt = COCO(str(path))
    ref, fast = _run(COCOeval, gt, dets), _run(_cocoeval_class(), gt, dets)
    assert len(ref.evalImgs) == len(fast.evalImgs)
    for a, b in zip(ref.evalImgs, fast.evalImgs, strict=True):
        assert (a is None) == (b is None)
        if a is None:
            continue
        assert a.keys() == b.keys()
        for key, va in a.items():
            vb = b[key]
            if isinstance(va, np.ndarray):
                assert va.dtype == vb.dtype and va.shape == vb.shape, key
                assert np.array_equal(va, vb), key
            else:
                assert va == vb, key
    assert np.array_equal(ref.eval["precision"], fast.eval["precision"])
    assert np.array_equal(ref.stats, fast.stats)
    assert 0 < ref.stats[0] < 1  # the data exercises real matches, not only misses
    assert coco_stats(path, dets) == coco_stats(path, dets, reference=True)


def test_compare_latency_times_models_side_by_side(tmp_path: Path) -> None:
    import paddle
    from kslim_runner.measure.latency import compare_latency, measure_latency
    from kslim_runner.measure.predictor import PredictorOptions
    from kslim_runner.models import DetectorConfig, build_detector
    from kslim_runner.models.export import export_detector

    paddle.seed(0)
    out = export_detector(
        build_detector(DetectorConfig("yolov3_mobilenet_v1", 3, 64, 0.25)), tmp_path / "m", ["a", "b", "c"]
    )
    opts = [PredictorOptions(threads=1), PredictorOptions(threads=2)]
    lats = compare_latency([(out, o) for o in opts], iterations=7, per_round=3, warmup=1)
    assert [(lat.runs, lat.threads, lat.batchSize) for lat in lats] == [(7, 1, 1), (7, 2, 1)]
    assert all(0 < lat.p50 <= lat.p90 for lat in lats)
    one = measure_latency(out, opts=opts[0], batch_size=2, warmup=1, iterations=3)
    assert one.runs == 3 and one.batchSize == 2 and one.precision == "fp32"


def test_predictors_run_with_spinning_openmp_threads_and_training_keeps_sleeping_ones(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """KMP_BLOCKTIME=0 (set for training) would make every one of ~80 parallel regions of an
    inference call wake sleeping threads; evaluation and latency spin them, then put it back."""
    import os

    from kslim_runner.measure import predictor as predictor_module
    from kslim_runner.measure.latency import compare_latency
    from kslim_runner.measure.predictor import PredictorOptions, spinning_threads
    from kslim_runner.models import DetectorConfig, build_detector
    from kslim_runner.models.export import export_detector

    runtime = predictor_module._openmp()
    assert runtime is not None, "paddle's CPU build ships Intel OpenMP in paddle/libs"
    training = int(os.environ.get("KMP_BLOCKTIME", "0"))
    assert runtime.kmp_get_blocktime() == training
    with spinning_threads():
        assert runtime.kmp_get_blocktime() == predictor_module.INFERENCE_BLOCKTIME_MS
    assert runtime.kmp_get_blocktime() == training

    seen: list[int] = []
    real_run = predictor_module.run_detector

    def run_and_look(*args: object) -> object:
        seen.append(runtime.kmp_get_blocktime())
        return real_run(*args)  # type: ignore[arg-type]

    out = export_detector(
        build_detector(DetectorConfig("yolov3_mobilenet_v1", 3, 64, 0.25)), tmp_path / "m", ["a"]
    )
    import kslim_runner.measure.latency as latency_module

    monkeypatch.setattr(latency_module, "run_detector", run_and_look)
    compare_latency([(out, PredictorOptions(threads=2))], iterations=2, per_round=1, warmup=1)
    assert seen and set(seen) == {predictor_module.INFERENCE_BLOCKTIME_MS}
    assert runtime.kmp_get_blocktime() == training
