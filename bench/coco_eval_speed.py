"""COCO evaluation side by side: stock pycocotools vs faster-coco-eval (the runner's evaluator),
bbox and segm, on synthetic ground truth (kslim_runner.data.synth) and on a set built to hit every
branch of the matching (crowds, ground truths outside an area range, score ties, several detections
per object, images without detections or without objects).

    python bench/coco_eval_speed.py [--reps 3] [--big 500]

Each evaluator is timed from the annotations file and the detection list to its stats (load the
ground truth, loadRes, evaluate, accumulate, summarize), --reps times, alternating; the median is
printed. `max |d|` is the largest difference from stock pycocotools over all 12 stats (the six AP
fields and the six AR ones); `runner |d|` the same for kslim_runner.measure.coco_eval.coco_stats
(rounded to 6 digits). Exits 1 if any difference exceeds 1e-6.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import kslim_runner  # noqa: F401  (zlib before paddle)
import numpy as np
from kslim_runner.api import STAT_NAMES, SynthConfig, coco_stats, evaluator_stats, generate

TOLERANCE = 1e-6


def _rect(x: float, y: float, w: float, h: float) -> list[list[float]]:
    return [[x, y, x + w, y, x + w, y + h, x, y + h]]


def _rle(polygons: list[list[float]], height: int, width: int) -> dict:
    from pycocotools import mask as mask_util

    rle = mask_util.merge(mask_util.frPyObjects(polygons, height, width))
    return {"size": [int(v) for v in rle["size"]], "counts": rle["counts"].decode("ascii")}


def detections(gt: dict, count: int, rng: np.random.Generator) -> list[dict]:
    """`count` detections with boxes and RLE masks: 0-4 jittered copies of each object (shifted and
    scaled polygons; scores with ties), then false positives on random images (every 5th image
    gets none) up to `count`."""
    sizes = {im["id"]: (im["height"], im["width"]) for im in gt["images"]}
    cats = [c["id"] for c in gt["categories"]]
    dets: list[dict] = []
    for ann in gt["annotations"]:
        x, y, w, h = ann["bbox"]
        for _ in range(int(rng.integers(0, 5))):
            if len(dets) >= count // 2:
                break
            dx, dy = rng.normal(0, 0.12 * min(w, h), 2)
            s = float(rng.uniform(0.85, 1.15))
            polys = [
                [
                    float(v)
                    for px, py in zip(p[0::2], p[1::2], strict=True)
                    for v in (x + dx + (px - x) * s, y + dy + (py - y) * s)
                ]
                for p in ann["segmentation"]
            ]
            bbox = [x + dx, y + dy, max(1.0, w * s), max(1.0, h * s)]
            score = float(rng.choice([0.9, 0.5, rng.random()]))
            dets.append(_det(ann["image_id"], ann["category_id"], bbox, polys, score, sizes))
    with_dets = [im["id"] for k, im in enumerate(gt["images"]) if k % 5]
    while len(dets) < count:
        img = int(rng.choice(with_dets))
        hgt, wid = sizes[img]
        w, h = (float(v) for v in rng.uniform(2, 0.6 * min(hgt, wid), 2))
        x, y = float(rng.uniform(0, wid - w)), float(rng.uniform(0, hgt - h))
        score = float(rng.random())
        dets.append(_det(img, int(rng.choice(cats)), [x, y, w, h], _rect(x, y, w, h), score, sizes))
    return dets


def _det(img: int, cat: int, bbox: list[float], polys: list[list[float]], score: float, sizes: dict) -> dict:
    """As the runner writes them: box to 2 digits, score to 3 (ties), mask as compressed RLE."""
    h, w = sizes[img]
    return {
        "image_id": img,
        "category_id": cat,
        "bbox": [round(v, 2) for v in bbox],
        "score": round(score, 3),
        "segmentation": _rle(polys, h, w),
    }


def branchy_gt(rng: np.random.Generator, images: int, cats: int) -> dict:
    """Crowds (10%), tiny to huge objects (every area range), every 7th image without objects
    (tests/runner/test_runner_coco_eval.py checks the evaluator on it too)."""
    gt: dict[str, Any] = {
        "images": [],
        "annotations": [],
        "categories": [{"id": c + 1, "name": f"c{c}"} for c in range(cats)],
    }
    for i in range(images):
        gt["images"].append({"id": i + 1, "width": 640, "height": 640, "file_name": f"{i}.jpg"})
        for _ in range(int(rng.integers(0, 6)) if i % 7 else 0):
            w, h = (float(v) for v in rng.choice([8, 24, 64, 150, 400], 2))
            x, y = (float(v) for v in rng.uniform(0, 200, 2))
            gt["annotations"].append(
                {
                    "id": len(gt["annotations"]) + 1,
                    "image_id": i + 1,
                    "category_id": int(rng.integers(1, cats + 1)),
                    "bbox": [x, y, w, h],
                    "area": w * h,
                    "segmentation": _rect(x, y, w, h),
                    "iscrowd": int(rng.random() < 0.1),
                }
            )
    return gt


def stock(annotations: Path, dets: list[dict], iou_type: str) -> np.ndarray:
    from pycocotools.coco import COCO
    from pycocotools.cocoeval import COCOeval

    return _score(COCO, COCOeval, annotations, dets, iou_type)


def faster(annotations: Path, dets: list[dict], iou_type: str) -> np.ndarray:
    from faster_coco_eval import COCO, COCOeval_faster

    return _score(COCO, COCOeval_faster, annotations, dets, iou_type)


def runner(annotations: Path, dets: list[dict], iou_type: str) -> np.ndarray:
    stats = coco_stats(annotations, dets, iou_type=iou_type)
    return np.array([-1.0 if stats[k] is None else stats[k] for k in STAT_NAMES])


def _score(coco: type, cocoeval: type, annotations: Path, dets: list[dict], iou_type: str) -> np.ndarray:
    if iou_type == "segm":  # area and box from the mask, as the runner scores masks
        dets = [{k: v for k, v in d.items() if k != "bbox"} for d in dets]
    else:
        dets = [{k: v for k, v in d.items() if k != "segmentation"} for d in dets]
    return evaluator_stats(coco, cocoeval, annotations, dets, iou_type)


def timed(fn: Callable[..., np.ndarray], *args: Any) -> tuple[float, np.ndarray]:
    t0 = time.perf_counter()
    out = fn(*args)
    return time.perf_counter() - t0, out


def datasets(work: Path, big: int) -> list[tuple[str, Path, list[dict]]]:
    rng = np.random.default_rng(0)
    out = []
    for images, count in ((100, 5_000), (100, 30_000), (big, 50 * big)):
        ann = generate(work / f"synth{images}", SynthConfig(images=images, size=160, classes=3))
        gt = json.loads(ann.read_text())
        out.append((f"synth {images} img", ann, detections(gt, count, rng)))
    gt = branchy_gt(rng, 300, 3)
    ann = work / "branchy.json"
    ann.write_text(json.dumps(gt))
    out.append(("crowds/areas/ties 300 img", ann, detections(gt, 6_000, rng)))
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--big", type=int, default=500, help="images of the largest synthetic set")
    args = ap.parse_args()
    from importlib.metadata import version

    print(
        f"# {platform.processor() or platform.machine()}, {os.cpu_count()} CPUs, "
        f"Python {platform.python_version()}, pycocotools {version('pycocotools')}, "
        f"faster-coco-eval {version('faster-coco-eval')}, load {[round(x, 2) for x in os.getloadavg()]}"
    )
    print()
    print("| set | iouType | dets | stock s | faster s | speed-up | max abs d | runner abs d |")
    print("| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: |")
    worst = 0.0
    with tempfile.TemporaryDirectory() as tmp:
        for name, ann, dets in datasets(Path(tmp), args.big):
            for iou_type in ("bbox", "segm"):
                times: dict[str, list[float]] = {"stock": [], "faster": []}
                ref = got = np.zeros(12)
                for _ in range(args.reps):
                    t, ref = timed(stock, ann, dets, iou_type)
                    times["stock"].append(t)
                    t, got = timed(faster, ann, dets, iou_type)
                    times["faster"].append(t)
                mine = runner(ann, dets, iou_type)
                d = float(np.max(np.abs(ref - got)))
                d_runner = float(np.max(np.abs(ref[:6] - mine)))
                worst = max(worst, d, d_runner)
                s, f = statistics.median(times["stock"]), statistics.median(times["faster"])
                print(
                    f"| {name} | {iou_type} | {len(dets)} | {s:.3f} | {f:.3f} | {s / f:.1f}x "
                    f"| {d:.1e} | {d_runner:.1e} |"
                )
    print()
    print(f"AP {ref[0]:.4f} on the last set; worst difference {worst:.1e} (tolerance {TOLERANCE:.0e})")
    return 0 if worst <= TOLERANCE else 1


if __name__ == "__main__":
    raise SystemExit(main())
