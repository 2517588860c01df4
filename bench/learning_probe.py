"""What the baseline detector has learned after N images: YOLOv3's loss split into its terms on
held-out images, next to the same terms for a model that predicts only the priors.

    python bench/learning_probe.py [--steps 300] [--every 100] [--batch-size 8]

Trains YOLOv3-MobileNetV1 (width 0.5, 160 px, as bench/baseline.py, one process, flips and colour
only) and after every `--every` steps scores 64 validation images in train mode:

- xy, wh, objectness (positive cells / the rest) and class terms, summed per image as
  paddle.vision.ops.yolo_loss sums them (their total is checked against yolo_loss itself);
- the mean objectness the model gives the cells that hold an object, and its class accuracy there.

The "prior" row is the untrained model with its heads zeroed, i.e. constant predictions. A model
that has only learned the priors matches that row on the object terms and has chance class
accuracy (1/3). Prints a table and writes bench/results/learning_probe.json.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

import kslim_runner  # noqa: F401  (zlib before paddle)
import numpy as np

HERE = Path(__file__).resolve().parent
PROBE_IMAGES = 64


def _sigmoid(z: np.ndarray) -> np.ndarray:
    return 1 / (1 + np.exp(-np.clip(z, -60, 60)))


def _bce(p: np.ndarray | float, t: np.ndarray | float) -> np.ndarray:
    p = np.clip(p, 1e-7, 1 - 1e-7)
    return -(t * np.log(p) + (1 - t) * np.log(1 - p))


def _overlap(c1: np.ndarray, s1: np.ndarray, c2: float, s2: float) -> np.ndarray:
    """Overlap along one axis of segments given by centre and size."""
    return np.clip(np.minimum(c1 + s1 / 2, c2 + s2 / 2) - np.maximum(c1 - s1 / 2, c2 - s2 / 2), 0, None)


def loss_terms(
    outputs: list[np.ndarray],
    gt_box: np.ndarray,
    gt_label: np.ndarray,
    anchors: np.ndarray,
    masks: tuple[tuple[int, ...], ...],
    input_size: int,
    num_classes: int,
    ignore_thresh: float = 0.7,
) -> dict[str, float]:
    """yolo_loss's terms per image (and positive-cell statistics), following its assignment: each
    box goes to the best-IoU anchor of all nine, in the cell holding its centre; other cells are
    negatives unless a predicted box there overlaps a box by more than ignore_thresh."""
    n = gt_box.shape[0]
    sums = dict.fromkeys(("xy", "wh", "objPositive", "objNegative", "cls"), 0.0)
    pos_obj, pos_hit = [], []
    for level, out in enumerate(outputs):
        _, _, h, w = out.shape
        out = out.reshape(n, len(masks[level]), 5 + num_classes, h, w)
        gx, gy = np.meshgrid(np.arange(w), np.arange(h))
        for i in range(n):
            boxes = [
                (gt_box[i, k], int(gt_label[i, k])) for k in range(gt_box.shape[1]) if gt_box[i, k, 2] > 0
            ]
            positive = np.zeros((len(masks[level]), h, w), bool)
            ignored = np.zeros_like(positive)
            for a, anchor in enumerate(masks[level]):
                px, py = (_sigmoid(out[i, a, 0]) + gx) / w, (_sigmoid(out[i, a, 1]) + gy) / h
                pw = np.exp(np.clip(out[i, a, 2], -20, 20)) * anchors[anchor, 0] / input_size
                ph = np.exp(np.clip(out[i, a, 3], -20, 20)) * anchors[anchor, 1] / input_size
                for b, _ in boxes:
                    ix, iy = _overlap(px, pw, b[0], b[2]), _overlap(py, ph, b[1], b[3])
                    ignored[a] |= ix * iy / (pw * ph + b[2] * b[3] - ix * iy) > ignore_thresh
            for b, label in boxes:
                bw, bh = b[2] * input_size, b[3] * input_size
                inter = np.minimum(bw, anchors[:, 0]) * np.minimum(bh, anchors[:, 1])
                best = int(np.argmax(inter / (bw * bh + anchors[:, 0] * anchors[:, 1] - inter)))
                if best not in masks[level]:
                    continue
                a, ci, cj = masks[level].index(best), int(b[0] * w), int(b[1] * h)
                p = out[i, a, :, cj, ci]
                scale = 2 - b[2] * b[3]
                sums["xy"] += scale * float(
                    _bce(_sigmoid(p[0]), b[0] * w - ci) + _bce(_sigmoid(p[1]), b[1] * h - cj)
                )
                sums["wh"] += scale * float(
                    abs(p[2] - np.log(bw / anchors[best, 0])) + abs(p[3] - np.log(bh / anchors[best, 1]))
                )
                sums["objPositive"] += float(_bce(_sigmoid(p[4]), 1.0))
                target = np.eye(num_classes)[label]
                sums["cls"] += float(_bce(_sigmoid(p[5:]), target).sum())
                pos_obj.append(float(_sigmoid(p[4])))
                pos_hit.append(int(np.argmax(p[5:]) == label))
                positive[a, cj, ci] = True
            negative = ~positive & ~ignored
            sums["objNegative"] += float(_bce(_sigmoid(out[i, :, 4]), 0.0)[negative].sum())
    terms = {k: v / n for k, v in sums.items()}
    terms["total"] = sum(terms.values())
    terms["positiveObjectness"] = float(np.mean(pos_obj)) if pos_obj else None
    terms["classAccuracy"] = float(np.mean(pos_hit)) if pos_hit else None
    return terms


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--steps", type=int, default=300)
    ap.add_argument("--every", type=int, default=100)
    ap.add_argument("--batch-size", type=int, default=8)
    ap.add_argument("--lr", type=float, default=0.003)
    ap.add_argument("--out", default=".kslim/bench", help="scratch folder for the data")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--results", default=str(HERE / "results" / "learning_probe.json"))
    args = ap.parse_args(argv)

    import paddle
    from kslim_runner.api import (
        ANCHOR_MASKS,
        AugmentConfig,
        DetectorConfig,
        SynthConfig,
        TrainConfig,
        build_detector,
        build_optimizer,
        generate,
        load_coco,
        read_image,
        train_transform,
    )

    size, classes = 160, 3
    out = Path(args.out).absolute()
    index = {}
    for split, n in (("train", 1000), ("val", 200)):
        folder = out / f"data-{size}-{n}-s{args.seed}" / split
        if not (folder / "annotations.json").is_file():
            generate(folder, SynthConfig(images=n, size=size, classes=classes, seed=args.seed), split=split)
        index[split] = load_coco(folder / "annotations.json", folder / "images", classes)

    def samples(
        split: str, rows: list[int], rng: np.random.Generator, aug: AugmentConfig
    ) -> list[np.ndarray]:
        idx = index[split]
        cols = [
            train_transform(read_image(idx.files[r]), idx.boxes[r], idx.labels[r], size, rng, aug)
            for r in rows
        ]
        return [np.stack(c) for c in zip(*cols, strict=True)]

    still = AugmentConfig(expand_prob=0.0, crop_prob=0.0, flip_prob=0.0, distort_prob=0.0)
    probe_x, probe_box, probe_label = samples(
        "val", list(range(PROBE_IMAGES)), np.random.default_rng(0), still
    )

    paddle.seed(args.seed)
    det = build_detector(DetectorConfig("yolov3_mobilenet_v1", classes, size, 0.5))
    anchors = np.asarray(det.anchors_flat, dtype=np.float32).reshape(-1, 2)

    def probe(label: str, images: int) -> dict:
        with paddle.no_grad():
            outs = det(paddle.to_tensor(probe_x))
            reference = float(det.loss(outs, paddle.to_tensor(probe_box), paddle.to_tensor(probe_label)))
        terms = loss_terms(
            [o.numpy() for o in outs], probe_box, probe_label, anchors, ANCHOR_MASKS, size, classes
        )
        return {"model": label, "trainImages": images, "yoloLoss": reference, **terms}

    rows = []
    heads = {k: v.numpy().copy() for k, v in det.heads.state_dict().items()}
    for head in det.heads:
        head.weight.set_value(np.zeros(head.weight.shape, np.float32))
    det.train()
    rows.append(probe("prior (heads zeroed)", 0))
    det.heads.set_state_dict(heads)
    rows.append(probe("step 0", 0))

    cfg = TrainConfig(
        iterations=args.steps, batch_size=args.batch_size, learning_rate=args.lr, warmup_iterations=30
    )
    opt = build_optimizer(det, cfg)
    light = AugmentConfig(expand_prob=0.0, crop_prob=0.0)
    order = np.random.default_rng(args.seed)
    t0 = time.monotonic()
    for step in range(1, args.steps + 1):
        opt.set_lr(args.lr * min(1.0, step / cfg.warmup_iterations))
        batch_rows = order.choice(len(index["train"]), args.batch_size, replace=False).tolist()
        x, box, label = samples("train", batch_rows, np.random.default_rng([args.seed, step]), light)
        loss = det.loss(det(paddle.to_tensor(x)), paddle.to_tensor(box), paddle.to_tensor(label))
        loss.backward()
        opt.step()
        opt.clear_grad()
        if step % args.every == 0 or step == args.steps:
            rows.append(probe(f"step {step}", step * args.batch_size))
            print(f"step {step}: total {rows[-1]['total']:.1f} ({time.monotonic() - t0:.0f} s)", flush=True)

    cols = (
        "xy",
        "wh",
        "objPositive",
        "objNegative",
        "cls",
        "total",
        "yoloLoss",
        "positiveObjectness",
        "classAccuracy",
    )
    print("\n| model | train images | " + " | ".join(cols) + " |")
    print("| :-- | --: |" + " --: |" * len(cols))
    for r in rows:
        cells = ["-" if r[c] is None else f"{r[c]:.3f}" if c in cols[-2:] else f"{r[c]:.2f}" for c in cols]
        print(f"| {r['model']} | {r['trainImages']} | " + " | ".join(cells) + " |")
    result = {
        "benchmark": "learning_probe",
        "steps": args.steps,
        "batchSize": args.batch_size,
        "learningRate": args.lr,
        "probeImages": PROBE_IMAGES,
        "rows": rows,
        "loadAverage": os.getloadavg(),
        "date": time.strftime("%Y-%m-%d"),
    }
    Path(args.results).write_text(json.dumps(result, indent=2) + "\n")
    print(f"\nwrote {args.results}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
