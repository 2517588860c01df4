"""Detection transforms on numpy images (RGB uint8 HWC) and pixel boxes (x1, y1, x2, y2).

Training: colour distort -> random expand -> random IoU crop -> resize -> random flip -> normalize.
Evaluation: resize -> normalize, plus the im_shape / scale_factor the exported model expects.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

MEAN = (0.485, 0.456, 0.406)
STD = (0.229, 0.224, 0.225)
MAX_BOXES = 50
_INTERPS = (cv2.INTER_NEAREST, cv2.INTER_LINEAR, cv2.INTER_AREA, cv2.INTER_CUBIC)


@dataclass(frozen=True)
class AugmentConfig:
    expand_prob: float = 0.5
    expand_max_ratio: float = 2.0
    crop_prob: float = 0.5
    flip_prob: float = 0.5
    distort_prob: float = 0.5


def colour_distort(img: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Random brightness, contrast and saturation (each with probability 1/2)."""
    out = img.astype(np.float32)
    if rng.random() < 0.5:
        out += rng.uniform(-32, 32)
    if rng.random() < 0.5:
        out = (out - out.mean()) * rng.uniform(0.6, 1.4) + out.mean()
    if rng.random() < 0.5:
        grey = out.mean(axis=2, keepdims=True)
        out = grey + (out - grey) * rng.uniform(0.5, 1.5)
    return np.clip(out, 0, 255).astype(np.uint8)


def random_expand(
    img: np.ndarray, boxes: np.ndarray, rng: np.random.Generator, max_ratio: float
) -> tuple[np.ndarray, np.ndarray]:
    """Place the image at a random spot of a larger canvas filled with the mean colour (zoom out)."""
    h, w = img.shape[:2]
    ratio = rng.uniform(1.0, max_ratio)
    nh, nw = int(h * ratio), int(w * ratio)
    y0, x0 = int(rng.integers(0, nh - h + 1)), int(rng.integers(0, nw - w + 1))
    canvas = np.empty((nh, nw, 3), dtype=img.dtype)
    canvas[:] = np.array(MEAN) * 255
    canvas[y0 : y0 + h, x0 : x0 + w] = img
    return canvas, boxes + np.array([x0, y0, x0, y0], dtype=np.float32)


def _iou(box: np.ndarray, boxes: np.ndarray) -> np.ndarray:
    lt = np.maximum(box[:2], boxes[:, :2])
    rb = np.minimum(box[2:], boxes[:, 2:])
    inter = np.prod(np.clip(rb - lt, 0, None), axis=1)
    area = np.prod(box[2:] - box[:2]) + np.prod(boxes[:, 2:] - boxes[:, :2], axis=1) - inter
    return inter / np.maximum(area, 1e-9)


def random_crop(
    img: np.ndarray, boxes: np.ndarray, labels: np.ndarray, rng: np.random.Generator, tries: int = 30
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """SSD-style crop: a random window overlapping some box by at least a random IoU; boxes whose
    centre falls outside are dropped, the others clipped. Unchanged when no window qualifies."""
    h, w = img.shape[:2]
    if len(boxes) == 0:
        return img, boxes, labels
    min_iou = rng.choice([0.1, 0.3, 0.5, 0.7])
    for _ in range(tries):
        scale = rng.uniform(0.35, 1.0)
        aspect = rng.uniform(max(0.5, scale**2), min(2.0, 1 / scale**2))
        cw, ch = int(w * scale * np.sqrt(aspect)), int(h * scale / np.sqrt(aspect))
        if cw < 8 or ch < 8 or cw > w or ch > h:
            continue
        x0, y0 = int(rng.integers(0, w - cw + 1)), int(rng.integers(0, h - ch + 1))
        win = np.array([x0, y0, x0 + cw, y0 + ch], dtype=np.float32)
        if _iou(win, boxes).max() < min_iou:
            continue
        centres = (boxes[:, :2] + boxes[:, 2:]) / 2
        keep = np.all((centres >= win[:2]) & (centres < win[2:]), axis=1)
        if not keep.any():
            continue
        nb = boxes[keep].copy()
        nb[:, :2] = np.maximum(nb[:, :2], win[:2]) - win[:2]
        nb[:, 2:] = np.minimum(nb[:, 2:], win[2:]) - win[:2]
        return img[y0 : y0 + ch, x0 : x0 + cw], nb, labels[keep]
    return img, boxes, labels


def resize(img: np.ndarray, size: int, interp: int = cv2.INTER_LINEAR) -> tuple[np.ndarray, float, float]:
    """Resize to size x size (aspect not kept, as PaddleDetection's YOLOv3); returns (img, sy, sx)."""
    h, w = img.shape[:2]
    out = cv2.resize(img, (size, size), interpolation=interp)
    return out, size / h, size / w


def normalize(img: np.ndarray, mean: tuple[float, ...] = MEAN, std: tuple[float, ...] = STD) -> np.ndarray:
    """RGB uint8 HWC -> float32 CHW, scaled to [0, 1] then standardised."""
    out = (img.astype(np.float32) * (1 / 255.0) - np.asarray(mean, np.float32)) / np.asarray(std, np.float32)
    return np.ascontiguousarray(out.transpose(2, 0, 1))


def yolo_targets(
    boxes: np.ndarray, labels: np.ndarray, size: int, max_boxes: int = MAX_BOXES
) -> tuple[np.ndarray, np.ndarray]:
    """Pad to max_boxes: gt_box as normalised (cx, cy, w, h) float32, gt_label int32 (padding w = h = 0)."""
    gt_box = np.zeros((max_boxes, 4), dtype=np.float32)
    gt_label = np.zeros((max_boxes,), dtype=np.int32)
    if len(boxes):
        b = np.clip(boxes, 0, size)
        wh = b[:, 2:] - b[:, :2]
        ok = np.all(wh >= 2, axis=1)
        b, wh, lab = b[ok][:max_boxes], wh[ok][:max_boxes], labels[ok][:max_boxes]
        k = len(b)
        gt_box[:k, :2] = (b[:, :2] + wh / 2) / size
        gt_box[:k, 2:] = wh / size
        gt_label[:k] = lab
    return gt_box, gt_label


def train_transform(
    img: np.ndarray,
    boxes: np.ndarray,
    labels: np.ndarray,
    size: int,
    rng: np.random.Generator,
    aug: AugmentConfig = AugmentConfig(),
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """One augmented training sample: (image CHW float32, gt_box [B, 4], gt_label [B])."""
    boxes = boxes.astype(np.float32)
    if rng.random() < aug.distort_prob:
        img = colour_distort(img, rng)
    if rng.random() < aug.expand_prob:
        img, boxes = random_expand(img, boxes, rng, aug.expand_max_ratio)
    if rng.random() < aug.crop_prob:
        img, boxes, labels = random_crop(img, boxes, labels, rng)
    img, sy, sx = resize(img, size, _INTERPS[int(rng.integers(0, len(_INTERPS)))])
    boxes = boxes * np.array([sx, sy, sx, sy], dtype=np.float32)
    if rng.random() < aug.flip_prob:
        img = img[:, ::-1]
        boxes = np.stack([size - boxes[:, 2], boxes[:, 1], size - boxes[:, 0], boxes[:, 3]], axis=1)
    gt_box, gt_label = yolo_targets(boxes, labels, size)
    return normalize(img), gt_box, gt_label


def eval_transform(img: np.ndarray, size: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(image CHW float32, im_shape [2], scale_factor [2]) as PaddleDetection's exported models take them."""
    out, sy, sx = resize(img, size)
    return (
        normalize(out),
        np.array([size, size], dtype=np.float32),
        np.array([sy, sx], dtype=np.float32),
    )
