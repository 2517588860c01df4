"""The evaluator (faster-coco-eval) gives stock pycocotools' stats to 1e-6, bbox and segm, on
detections built to hit every branch of the matching: crowds, ground truths outside an area range,
score ties, several detections per ground truth, images without detections or without objects; and
on many detections (5,000 over 100 synthetic images, some images past maxDets)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from kslim_runner.data.synth import SynthConfig, generate
from kslim_runner.measure.coco_eval import STAT_NAMES, coco_stats, evaluator_stats
from pycocotools import mask as mask_util
from pycocotools.coco import COCO
from pycocotools.cocoeval import COCOeval
from support.benchscripts import load_bench_script

#: bench/coco_eval_speed.py, whose ground truth hits every branch of the matching.
COCO_BENCH = load_bench_script("coco_eval_speed")


def _dataset(rng: np.random.Generator, images: int, cats: int) -> tuple[dict, list[dict]]:
    """The bench's ground truth (crowds, tiny to huge boxes, every 7th image without objects) and
    detections near and far from it."""
    gt = COCO_BENCH.branchy_gt(rng, images, cats)
    dets: list[dict] = []
    for ann in gt["annotations"]:
        x, y, w, h = ann["bbox"]
        for _ in range(int(rng.integers(0, 4))):  # near-duplicates compete for the same box
            jitter = rng.normal(0, 0.15 * min(w, h), 4)
            dets.append(
                {
                    "image_id": ann["image_id"],
                    "category_id": ann["category_id"],
                    "bbox": [x + jitter[0], y + jitter[1], max(1.0, w + jitter[2]), max(1.0, h + jitter[3])],
                    "score": round(float(rng.choice([0.9, 0.5, rng.random()])), 2),  # ties
                }
            )
    for i, image in enumerate(gt["images"]):
        if i % 5:  # every 5th image has no detections
            for _ in range(int(rng.integers(0, 30))):
                x, y, w, h = (float(v) for v in rng.uniform(1, 300, 4))
                dets.append(
                    {
                        "image_id": image["id"],
                        "category_id": int(rng.integers(1, cats + 1)),
                        "bbox": [x, y, w, h],
                        "score": round(float(rng.random()), 3),
                    }
                )
    return gt, dets


def _with_masks(dets: list[dict], size: int) -> list[dict]:
    """Each detection also with its box as a compressed RLE mask (an image `size` square)."""
    out = []
    for d in dets:
        x, y, w, h = d["bbox"]
        rle = mask_util.frPyObjects([[x, y, x + w, y, x + w, y + h, x, y + h]], size, size)[0]
        out.append({**d, "segmentation": {"size": rle["size"], "counts": rle["counts"].decode("ascii")}})
    return out


def _stats(coco: type, cocoeval: type, path: Path, dets: list[dict], iou_type: str) -> np.ndarray:
    if iou_type == "segm":
        dets = [{k: v for k, v in d.items() if k != "bbox"} for d in dets]
    else:
        dets = [dict(d) for d in dets]
    return evaluator_stats(coco, cocoeval, path, dets, iou_type)


def _assert_agrees(path: Path, dets: list[dict]) -> None:
    """faster-coco-eval's 12 stats (AP and AR fields) and coco_stats' six match pycocotools'."""
    import faster_coco_eval

    for iou_type in ("bbox", "segm"):
        ref = _stats(COCO, COCOeval, path, dets, iou_type)
        got = _stats(faster_coco_eval.COCO, faster_coco_eval.COCOeval_faster, path, dets, iou_type)
        assert np.max(np.abs(ref - got)) <= 1e-6, (iou_type, ref, got)
        assert 0 < ref[0] < 1, iou_type  # real matches and real misses, not a trivial score
        mine = coco_stats(path, dets, iou_type=iou_type)
        stock = coco_stats(path, dets, iou_type=iou_type, reference=True)
        for name, value in zip(STAT_NAMES, ref[:6], strict=True):
            assert mine[name] == stock[name], (iou_type, name)
            if value < 0:
                assert mine[name] is None, (iou_type, name)  # no ground truth in that area range
            else:
                assert mine[name] == pytest.approx(value, abs=1e-6), (iou_type, name)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_evaluator_agrees_with_pycocotools(tmp_path: Path, seed: int) -> None:
    gt_doc, dets = _dataset(np.random.default_rng(seed), images=60, cats=3)
    path = tmp_path / "gt.json"
    path.write_text(json.dumps(gt_doc))
    before = json.dumps(dets)
    _assert_agrees(path, _with_masks(dets, 640))
    assert json.dumps(dets) == before  # the caller's detections are left as they were


def test_evaluator_agrees_with_pycocotools_on_many_detections(tmp_path: Path) -> None:
    """5,000 detections over 100 synthetic images: near-duplicates of each object (shifted boxes,
    tied scores) and false positives, 150 on some images (past maxDets=100)."""
    path = generate(tmp_path / "synth", SynthConfig(images=100, size=160, classes=3))
    doc = json.loads(path.read_text())
    rng = np.random.default_rng(0)
    dets: list[dict] = []
    for ann in doc["annotations"]:
        x, y, w, h = ann["bbox"]
        for _ in range(int(rng.integers(0, 4))):
            dx, dy = rng.normal(0, 0.15 * min(w, h), 2)
            box = [round(float(v), 2) for v in (x + dx, y + dy, w, h)]
            score = round(float(rng.choice([0.9, 0.5, rng.random()])), 2)
            dets.append(
                {"image_id": ann["image_id"], "category_id": ann["category_id"], "bbox": box, "score": score}
            )
    crowded = [im["id"] for im in doc["images"][:10]]
    for img in crowded:
        for _ in range(150):
            x, y, w, h = (round(float(v), 2) for v in rng.uniform(1, 80, 4))
            dets.append(
                {
                    "image_id": img,
                    "category_id": 1,
                    "bbox": [x, y, w, h],
                    "score": round(float(rng.random()), 3),
                }
            )
    others = [im["id"] for i, im in enumerate(doc["images"][10:]) if i % 5]
    while len(dets) < 5_000:
        x, y, w, h = (round(float(v), 2) for v in rng.uniform(1, 80, 4))
        dets.append(
            {
                "image_id": int(rng.choice(others)),
                "category_id": int(rng.integers(1, 4)),
                "bbox": [x, y, w, h],
                "score": round(float(rng.random()), 3),
            }
        )
    _assert_agrees(path, _with_masks(dets[:5_000], 160))


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
