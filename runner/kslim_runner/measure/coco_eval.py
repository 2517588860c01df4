"""COCO box AP (and mask AP, for a model that outputs instance masks) of an exported inference model,
run through Paddle Inference, scored by faster-coco-eval (pycocotools' numbers, faster)."""

from __future__ import annotations

import contextlib
import io
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
from paddle import inference

from kslim_runner.atomic import write_json
from kslim_runner.data.coco import CocoIndex, read_image
from kslim_runner.measure.predictor import (
    PredictorOptions,
    create_predictor,
    run_detector_masks,
    spinning_threads,
)
from kslim_runner.measure.preprocess import Preprocess, load_preprocess, stack_batch
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
    cocoSeconds: float = 0.0  # of `seconds`, the COCO evaluation's share (the rest: decoding and inference)
    maskAp: float | None = None  # COCO mask ("segm") AP, for models that output masks
    maskAp50: float | None = None

    def to_dict(self) -> dict:
        """The fields; the mask ones only for a mask model (box-only results keep their keys)."""
        d = asdict(self)
        for key in ("maskAp", "maskAp50"):
            if d[key] is None:
                del d[key]
        return d


def encode_mask(mask: np.ndarray) -> dict:
    """A binary [H, W] mask as COCO's compressed RLE (counts as text, so it goes into JSON)."""
    from pycocotools import mask as mask_util

    rle = mask_util.encode(np.asfortranarray(mask.astype(np.uint8)))
    return {"size": [int(v) for v in rle["size"]], "counts": rle["counts"].decode("ascii")}


def image_mask(masks: np.ndarray, k: int, height: int, width: int) -> np.ndarray:
    """Detection k's mask on its image (height x width): the model's masks span the batch's largest
    image, with -1 beyond each image's own size."""
    m = masks[k, :height, :width] > 0
    if m.shape != (height, width):
        m = np.pad(m, ((0, height - m.shape[0]), (0, width - m.shape[1])))
    return m


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
            yield chunk, stack_batch(samples)


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
    """COCO-format detections (image_id, category_id, bbox [x, y, w, h], score) for every image; a
    mask model's also carry `segmentation` (RLE at the image's size)."""
    pre = load_preprocess(model_dir)
    if predictor is None:
        predictor = create_predictor(model_files(model_dir), opts)
    dets: list[dict] = []
    progress = Progress(stage, len(index), every=max(1, len(index) // 10))
    done = 0
    n_cats = len(index.category_ids)
    for rows, (image, im_shape, scale) in _batches(index, pre, batch_size, workers=max(1, opts.threads)):
        boxes, nums, masks = run_detector_masks(predictor, image, im_shape, scale)
        # Filtered in numpy (float64, so the threshold compares as on Python floats), then rounded
        # with Python's round: the same detections and digits as a per-box Python loop, faster.
        b = boxes.astype(np.float64)
        owner = np.repeat(np.asarray(rows), nums)
        cls = b[:, 0].astype(np.int64)  # truncation, as int()
        keep = (cls >= 0) & (cls < n_cats) & (b[:, 1] >= score_threshold)
        kept = np.flatnonzero(keep).tolist()
        origin = np.floor(im_shape / scale + 0.5).astype(np.int64)  # each image's [h, w]
        for k, row, c, (score, x1, y1, x2, y2) in zip(
            kept, owner[keep].tolist(), cls[keep].tolist(), b[keep, 1:].tolist(), strict=True
        ):
            det = {
                "image_id": index.image_ids[row],
                "category_id": index.category_ids[c],
                "bbox": [round(x1, 2), round(y1, 2), round(x2 - x1, 2), round(y2 - y1, 2)],
                "score": round(score, 5),
            }
            if masks is not None and pre.mask:
                h, w = index.sizes[row]  # the JSON's size, which pycocotools' masks have
                if h <= 0 or w <= 0:
                    h, w = (int(v) for v in origin[rows.index(row)])
                det["segmentation"] = encode_mask(image_mask(masks, k, h, w))
            dets.append(det)
        done += len(rows)
        progress.update(done)
    progress.close()
    return dets


def coco_stats(
    annotations: Path, dets: list[dict], *, reference: bool = False, iou_type: str = "bbox"
) -> dict[str, float | None]:
    """COCO bbox (or, with iou_type "segm", mask) stats, by faster-coco-eval's C++ COCOeval (the
    same numbers as stock pycocotools, tests/runner/test_runner_coco_eval.py and
    bench/coco_eval_speed.py; 1.2-7x faster there) or, with `reference`, by stock pycocotools.
    `dets` is left as it is; the evaluators' printing goes nowhere (stdout carries progress lines)."""
    if iou_type == "segm":
        # without `bbox`, loadRes takes each detection's area and box from its mask
        dets = [{k: v for k, v in d.items() if k != "bbox"} for d in dets if "segmentation" in d]
    else:
        dets = [dict(d) for d in dets]  # loadRes adds keys to the dicts it is given
    if not dets:
        return dict.fromkeys(STAT_NAMES, 0.0)
    if reference:
        import pycocotools.coco
        import pycocotools.cocoeval

        coco, cocoeval = pycocotools.coco.COCO, pycocotools.cocoeval.COCOeval
    else:
        import faster_coco_eval

        coco, cocoeval = faster_coco_eval.COCO, faster_coco_eval.COCOeval_faster
    stats = evaluator_stats(coco, cocoeval, annotations, dets, iou_type)
    return {
        name: (None if v < 0 else round(float(v), 6)) for name, v in zip(STAT_NAMES, stats[:6], strict=True)
    }


def evaluator_stats(
    coco: Any, cocoeval: Any, annotations: Path, dets: list[dict], iou_type: str
) -> np.ndarray:
    """The 12 stats of a COCOeval implementation (`coco`, `cocoeval`: pycocotools' or
    faster-coco-eval's classes) on detections ready for loadRes; their printing goes nowhere."""
    with contextlib.redirect_stdout(io.StringIO()):
        gt = coco(str(annotations))
        ev = cocoeval(gt, gt.loadRes(dets), iouType=iou_type)
        ev.evaluate()
        ev.accumulate()
        ev.summarize()
    return np.asarray(ev.stats[:12], dtype=np.float64)


def evaluate_model(
    model_dir: Path,
    index: CocoIndex,
    *,
    batch_size: int = 8,
    score_threshold: float = 0.01,
    opts: PredictorOptions = PredictorOptions(),
    stage: str = "evaluate",
    detections_out: Path | None = None,
) -> EvalResult:
    """AP of the exported model (and mask AP when it outputs masks). Throughput counts decoding,
    inference and the COCO evaluation, not the one-time predictor creation and warm-up run
    (`setupSeconds`). With `detections_out`, the scored detections are also written there as a
    COCO results JSON (the dataset's own category ids), so a user can check or re-score them."""
    t_setup = time.monotonic()
    predictor = create_predictor(model_files(model_dir), opts)
    pre = load_preprocess(model_dir)
    n = min(batch_size, len(index))
    with spinning_threads():
        # warmed up on the first image, preprocessed as evaluation does (a keep_ratio resize and
        # PadStride make sizes that target_size alone does not give)
        sample = pre(read_image(index.files[0]))
        run_detector_masks(predictor, *stack_batch([sample] * n))
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
    t1 = time.monotonic()
    if detections_out is not None:
        write_json(detections_out, dets, indent=None)
    stats = coco_stats(index.annotations, dets)
    segm = coco_stats(index.annotations, dets, iou_type="segm") if pre.mask else None
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
        cocoSeconds=round(t0 + seconds - t1, 3),
        maskAp=None if segm is None else segm["ap"] or 0.0,
        maskAp50=None if segm is None else segm["ap50"] or 0.0,
    )
