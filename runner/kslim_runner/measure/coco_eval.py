"""COCO box AP of an exported inference model, run through Paddle Inference, scored by pycocotools."""

from __future__ import annotations

import contextlib
import io
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
from paddle import inference

from kslim_runner.data.coco import CocoIndex, read_image
from kslim_runner.measure.predictor import PredictorOptions, create_predictor, run_detector
from kslim_runner.measure.preprocess import Preprocess, load_preprocess
from kslim_runner.measure.program import model_files
from kslim_runner.progress import Progress

STAT_NAMES = ("ap", "ap50", "ap75", "apSmall", "apMedium", "apLarge")


@dataclass
class EvalResult:
    ap: float
    ap50: float
    ap75: float
    apSmall: float | None
    apMedium: float | None
    apLarge: float | None
    images: int
    detections: int
    seconds: float
    setupSeconds: float
    imagesPerSecond: float

    def to_dict(self) -> dict:
        return asdict(self)


def _batches(
    index: CocoIndex, pre: Preprocess, batch_size: int, workers: int
) -> Iterator[tuple[list[int], tuple]]:
    """Preprocessed batches in order; decoding runs ahead on a thread pool (cv2 releases the GIL)."""

    def load(i: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        return pre(read_image(index.files[i]))

    rows = list(range(len(index)))
    chunks = [rows[i : i + batch_size] for i in range(0, len(rows), batch_size)]
    with ThreadPoolExecutor(max_workers=workers) as pool:
        pending = [pool.map(load, c) for c in chunks[:2]]
        for k, chunk in enumerate(chunks):
            samples = list(pending[k])
            if k + 2 < len(chunks):
                pending.append(pool.map(load, chunks[k + 2]))
            yield chunk, tuple(np.stack(col) for col in zip(*samples, strict=True))


def predict(
    model_dir: Path,
    index: CocoIndex,
    *,
    batch_size: int = 8,
    opts: PredictorOptions = PredictorOptions(),
    stage: str = "evaluate",
    score_threshold: float = 0.0,
    predictor: inference.Predictor | None = None,
) -> list[dict]:
    """COCO-format detections (image_id, category_id, bbox [x, y, w, h], score) for every image."""
    pre = load_preprocess(model_dir)
    if predictor is None:
        predictor = create_predictor(model_files(model_dir), opts)
    dets: list[dict] = []
    progress = Progress(stage, len(index), every=max(1, len(index) // 10))
    done = 0
    for rows, (image, im_shape, scale) in _batches(index, pre, batch_size, workers=max(1, opts.threads)):
        boxes, nums = run_detector(predictor, image, im_shape, scale)
        start = 0
        for row, n in zip(rows, nums.tolist(), strict=True):
            for cls, score, x1, y1, x2, y2 in boxes[start : start + n].tolist():
                c = int(cls)
                if c < 0 or c >= len(index.category_ids) or score < score_threshold:
                    continue
                dets.append(
                    {
                        "image_id": index.image_ids[row],
                        "category_id": index.category_ids[c],
                        "bbox": [round(x1, 2), round(y1, 2), round(x2 - x1, 2), round(y2 - y1, 2)],
                        "score": round(score, 5),
                    }
                )
            start += n
        done += len(rows)
        progress.update(done)
    progress.close()
    return dets


def coco_stats(annotations: Path, dets: list[dict]) -> dict[str, float | None]:
    """pycocotools bbox stats; its printing goes nowhere (stdout carries progress lines)."""
    from pycocotools.coco import COCO
    from pycocotools.cocoeval import COCOeval

    if not dets:
        return dict.fromkeys(STAT_NAMES, 0.0)
    with contextlib.redirect_stdout(io.StringIO()):
        gt = COCO(str(annotations))
        dt = gt.loadRes(dets)
        ev = COCOeval(gt, dt, iouType="bbox")
        ev.evaluate()
        ev.accumulate()
        ev.summarize()
    return {
        name: (None if v < 0 else round(float(v), 6))
        for name, v in zip(STAT_NAMES, ev.stats[:6], strict=True)
    }


def evaluate_model(
    model_dir: Path,
    index: CocoIndex,
    *,
    batch_size: int = 8,
    score_threshold: float = 0.01,
    opts: PredictorOptions = PredictorOptions(),
    stage: str = "evaluate",
) -> EvalResult:
    """AP of the exported model. Throughput counts decoding, inference and pycocotools, not the
    one-time predictor creation and warm-up run (`setupSeconds`)."""
    t_setup = time.monotonic()
    predictor = create_predictor(model_files(model_dir), opts)
    pre = load_preprocess(model_dir)
    n = min(batch_size, len(index))
    run_detector(
        predictor,
        np.zeros((n, 3, *pre.target_size), np.float32),
        np.tile(np.array(pre.target_size, np.float32), (n, 1)),
        np.ones((n, 2), np.float32),
    )
    t0 = time.monotonic()
    dets = predict(
        model_dir,
        index,
        batch_size=batch_size,
        opts=opts,
        stage=stage,
        score_threshold=score_threshold,
        predictor=predictor,
    )
    stats = coco_stats(index.annotations, dets)
    seconds = time.monotonic() - t0
    return EvalResult(
        ap=stats["ap"] or 0.0,
        ap50=stats["ap50"] or 0.0,
        ap75=stats["ap75"] or 0.0,
        apSmall=stats["apSmall"],
        apMedium=stats["apMedium"],
        apLarge=stats["apLarge"],
        images=len(index),
        detections=len(dets),
        seconds=round(seconds, 3),
        setupSeconds=round(t0 - t_setup, 3),
        imagesPerSecond=round(len(index) / seconds, 2) if seconds > 0 else 0.0,
    )
