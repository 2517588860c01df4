"""Preprocessing as an exported model's infer_cfg.yml (PaddleDetection's format) describes it.
Supported ops: Resize (keep_ratio false or true), NormalizeImage, Permute."""

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

    def __call__(self, img: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """RGB uint8 HWC -> (image CHW float32, im_shape [2], scale_factor [2])."""
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
        return (
            np.ascontiguousarray(x.transpose(2, 0, 1)),
            np.array(out.shape[:2], dtype=np.float32),
            np.array([sy, sx], dtype=np.float32),
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
    kw: dict = {"label_list": tuple(str(x) for x in cfg.get("label_list") or ())}
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
        else:
            raise UserError(
                f"{path}: preprocessing op {kind} is not supported "
                "(supported: Resize, NormalizeImage, Permute)"
            )
    if "target_size" not in kw:
        raise UserError(f"{path}: no Resize step, so the input size is unknown")
    return Preprocess(**kw)
