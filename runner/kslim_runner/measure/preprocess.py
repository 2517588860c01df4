"""Preprocessing as an exported model's infer_cfg.yml (PaddleDetection's format) describes it.
Supported ops: Resize (keep_ratio false or true), NormalizeImage, Permute, PadStride.

With keep_ratio (R-CNN exports) images of other proportions come out in other sizes: `stack_batch`
pads a batch to its largest image, as PaddleDetection's deploy code does; `im_shape` keeps each
image's own resized size."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
import yaml

from kslim_runner.errors import UserError

INTERPS = {
    0: cv2.INTER_NEAREST,
    1: cv2.INTER_LINEAR,
    2: cv2.INTER_CUBIC,
    3: cv2.INTER_AREA,
    4: cv2.INTER_LANCZOS4,
}


@dataclass(frozen=True)
class Preprocess:
    target_size: tuple[int, int]
    keep_ratio: bool = False
    interp: int = 2
    mean: tuple[float, float, float] = (0.485, 0.456, 0.406)
    std: tuple[float, float, float] = (0.229, 0.224, 0.225)
    is_scale: bool = True
    label_list: tuple[str, ...] = ()
    pad_stride: int = 0  # PadStride: zero-pad height and width up to multiples of this (0: none)
    mask: bool = False  # infer_cfg's `mask`: the model also outputs instance masks

    def __call__(self, img: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """RGB uint8 HWC -> (image CHW float32, im_shape [2], scale_factor [2]). im_shape is the
        resized size before any padding."""
        h, w = img.shape[:2]
        th, tw = self.target_size
        if self.keep_ratio:
            s = min(min(th, tw) / min(h, w), max(th, tw) / max(h, w))
            sy = sx = s
        else:
            sy, sx = th / h, tw / w
        out = cv2.resize(img, None, fx=sx, fy=sy, interpolation=INTERPS.get(self.interp, cv2.INTER_LINEAR))
        x = out.astype(np.float32)
        if self.is_scale:
            x *= 1 / 255.0
        x = (x - np.asarray(self.mean, np.float32)) / np.asarray(self.std, np.float32)
        chw = x.transpose(2, 0, 1)
        if self.pad_stride > 1:
            chw = pad_to(chw, *(-(-n // self.pad_stride) * self.pad_stride for n in chw.shape[1:]))
        return (
            np.ascontiguousarray(chw),
            np.array(out.shape[:2], dtype=np.float32),
            np.array([sy, sx], dtype=np.float32),
        )


def pad_to(chw: np.ndarray, height: int, width: int) -> np.ndarray:
    """A CHW image zero-padded at the bottom and right to height x width (PaddleDetection's PadStride
    and batch padding: zeros after normalisation)."""
    c, h, w = chw.shape
    if (h, w) == (height, width):
        return chw
    out = np.zeros((c, height, width), dtype=chw.dtype)
    out[:, :h, :w] = chw
    return out


def stack_batch(
    samples: list[tuple[np.ndarray, np.ndarray, np.ndarray]],
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Preprocessed samples as one batch: images padded to the largest height and width."""
    height = max(s[0].shape[1] for s in samples)
    width = max(s[0].shape[2] for s in samples)
    return (
        np.stack([pad_to(s[0], height, width) for s in samples]),
        np.stack([s[1] for s in samples]),
        np.stack([s[2] for s in samples]),
    )


def load_preprocess(model_dir: Path) -> Preprocess:
    path = Path(model_dir) / "infer_cfg.yml"
    if not path.is_file():
        raise UserError(
            f"{path} not found: an exported detector needs PaddleDetection's infer_cfg.yml beside it"
        )
    try:
        cfg = yaml.safe_load(path.read_text()) or {}
    except yaml.YAMLError as e:
        raise UserError(f"{path} is not valid YAML ({e})") from e
    kw: dict = {
        "label_list": tuple(str(x) for x in cfg.get("label_list") or ()),
        "mask": bool(cfg.get("mask", False)),
    }
    for op in cfg.get("Preprocess") or []:
        kind = op.get("type")
        if kind == "Resize":
            ts = op["target_size"]
            kw.update(
                target_size=(int(ts[0]), int(ts[1])),
                keep_ratio=bool(op.get("keep_ratio", False)),
                interp=int(op.get("interp", 2)),
            )
        elif kind == "NormalizeImage":
            kw.update(
                mean=tuple(op.get("mean", (0.485, 0.456, 0.406))),
                std=tuple(op.get("std", (0.229, 0.224, 0.225))),
                is_scale=bool(op.get("is_scale", True)),
            )
        elif kind == "Permute":
            pass
        elif kind == "PadStride":
            kw["pad_stride"] = int(op.get("stride", 0))
        else:
            raise UserError(
                f"{path}: preprocessing op {kind} is not supported "
                "(supported: Resize, NormalizeImage, Permute, PadStride)"
            )
    if "target_size" not in kw:
        raise UserError(f"{path}: no Resize step, so the input size is unknown")
    return Preprocess(**kw)
