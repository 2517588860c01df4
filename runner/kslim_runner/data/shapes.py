"""Shape classes the synthetic generator draws: each a polygon (or ellipse) in a unit box."""

from __future__ import annotations

import math

import numpy as np

#: Class names in id order (COCO category ids are index + 1).
SHAPES = ("circle", "square", "triangle", "star", "cross", "hexagon", "ring", "diamond")


def _regular(n: int, phase: float = 0.0) -> np.ndarray:
    a = phase + np.arange(n) * 2 * math.pi / n
    return np.stack([0.5 + 0.5 * np.cos(a), 0.5 + 0.5 * np.sin(a)], axis=1)


def _star() -> np.ndarray:
    a = -math.pi / 2 + np.arange(10) * math.pi / 5
    r = np.where(np.arange(10) % 2 == 0, 0.5, 0.2)
    return np.stack([0.5 + r * np.cos(a), 0.5 + r * np.sin(a)], axis=1)


def _cross() -> np.ndarray:
    t, u = 0.32, 0.68
    return np.array(
        [[t, 0], [u, 0], [u, t], [1, t], [1, u], [u, u], [u, 1], [t, 1], [t, u], [0, u], [0, t], [t, t]]
    )


_POLYGONS: dict[str, np.ndarray] = {
    "square": np.array([[0, 0], [1, 0], [1, 1], [0, 1]], dtype=np.float64),
    "triangle": np.array([[0.5, 0], [1, 1], [0, 1]], dtype=np.float64),
    "star": _star(),
    "cross": _cross(),
    "hexagon": _regular(6),
    "diamond": np.array([[0.5, 0], [1, 0.5], [0.5, 1], [0, 0.5]], dtype=np.float64),
}


def shape_mask(name: str, w: int, h: int, angle: float) -> np.ndarray:
    """A uint8 mask (h, w) of the shape filling a w x h box, rotated by angle (radians) about its centre."""
    mask = np.zeros((h, w), dtype=np.uint8)
    if name in ("circle", "ring"):
        import cv2

        cv2.ellipse(
            mask,
            (w // 2, h // 2),
            (max(w // 2 - 1, 1), max(h // 2 - 1, 1)),
            math.degrees(angle),
            0,
            360,
            1,
            -1,
        )
        if name == "ring":
            cv2.ellipse(
                mask, (w // 2, h // 2), (max(w // 4, 1), max(h // 4, 1)), math.degrees(angle), 0, 360, 0, -1
            )
        return mask
    import cv2

    pts = _POLYGONS[name] - 0.5
    c, s = math.cos(angle), math.sin(angle)
    rot = pts @ np.array([[c, s], [-s, c]])
    span = rot.max(axis=0) - rot.min(axis=0)
    rot = (rot - rot.min(axis=0)) / np.maximum(span, 1e-6)  # fill the box after rotation
    xy = np.round(rot * [w - 1, h - 1]).astype(np.int32)
    cv2.fillPoly(mask, [xy], 1)
    return mask
