"""Synthetic COCO: scenes of shapes (several classes and sizes, occlusion, clutter, colour noise)
written as real JPEGs plus an instances JSON that pycocotools loads, every object with its box and
its polygon segmentation (so mask models train and are scored on it). `kslim data synth` and the
synthetic dataset format use it."""

from __future__ import annotations

import json
import math
import os
import shutil
import sys
import zlib
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
from kslim_api.contract import EXIT_OK, EXIT_USER

from kslim_runner.data.shapes import SHAPES, shape_mask

MIN_VISIBLE = 0.3  # an object hidden beyond this share by later objects is not annotated


@dataclass(frozen=True)
class SynthConfig:
    images: int
    size: int = 160
    classes: int = 3
    seed: int = 0
    max_objects: int = 6
    #: Object side as a share of the image side, drawn log-uniformly between these two.
    object_scale: tuple[float, float] = (0.1, 0.5)
    #: Distractors (lines, arcs, specks) that are not objects.
    clutter: bool = True


def _background(rng: np.random.Generator, size: int) -> np.ndarray:
    """A smooth colour gradient with low-frequency blotches."""
    c0, c1 = rng.uniform(0, 255, 3), rng.uniform(0, 255, 3)
    t = np.linspace(0, 1, size)[None, :, None]
    angle = rng.uniform(0, 2 * math.pi)
    yy, xx = np.mgrid[0:size, 0:size] / max(size - 1, 1)
    ramp = (np.cos(angle) * xx + np.sin(angle) * yy)[..., None]
    ramp = (ramp - ramp.min()) / max(float(np.ptp(ramp)), 1e-6)
    img = c0 * (1 - ramp) + c1 * ramp + 0 * t
    low = rng.normal(0, 18, (4, 4, 3))
    import cv2

    img = img + cv2.resize(low, (size, size), interpolation=cv2.INTER_CUBIC)
    return img


def _clutter(rng: np.random.Generator, img: np.ndarray) -> None:
    """Distractors that are not objects: thin lines, arcs and small specks."""
    import cv2

    size = img.shape[0]
    for _ in range(int(rng.integers(2, 7))):
        p0 = tuple(int(v) for v in rng.integers(0, size, 2))
        p1 = tuple(int(v) for v in rng.integers(0, size, 2))
        cv2.line(img, p0, p1, tuple(float(v) for v in rng.uniform(0, 255, 3)), int(rng.integers(1, 3)))
    for _ in range(int(rng.integers(0, 4))):
        c = tuple(int(v) for v in rng.integers(0, size, 2))
        r = int(rng.integers(3, max(4, size // 8)))
        cv2.ellipse(
            img,
            c,
            (r, r),
            0,
            float(rng.uniform(0, 360)),
            float(rng.uniform(40, 160)),
            tuple(float(v) for v in rng.uniform(0, 255, 3)),
            1,
        )
    for _ in range(int(rng.integers(0, 10))):
        c = tuple(int(v) for v in rng.integers(0, size, 2))
        cv2.circle(img, c, int(rng.integers(1, 3)), tuple(float(v) for v in rng.uniform(0, 255, 3)), -1)


def _contrasting_colour(rng: np.random.Generator, under: np.ndarray) -> np.ndarray:
    for _ in range(8):
        col = rng.uniform(0, 255, 3)
        if np.abs(col - under).sum() > 120:
            return col
    return 255 - under


def mask_polygons(mask: np.ndarray, offset: tuple[int, int] = (0, 0)) -> list[list[float]]:
    """COCO polygons ([x1, y1, x2, y2, ...] each, image coordinates) outlining a binary mask, one per
    connected part: rasterised back by pycocotools they give exactly the mask's pixels. Holes are
    not represented (COCO's polygons cannot; a ring's polygon covers its hole).

    Traced on the mask at twice the resolution, so that the outline runs a quarter pixel inside the
    outer pixels' edges rather than through their centres (which loses half a pixel all round: IoU
    0.6-0.8 for shapes of 10 px); straight runs are merged within half a pixel of that grid."""
    import cv2

    up = cv2.resize(mask.astype(np.uint8), None, fx=2, fy=2, interpolation=cv2.INTER_NEAREST)
    contours, _ = cv2.findContours(up, cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_SIMPLE)
    polygons = []
    for c in contours:
        pts = cv2.approxPolyDP(c, 0.5, True).reshape(-1, 2)
        if len(pts) < 3:
            continue
        xy = (pts + 0.5) / 2 + np.asarray(offset, dtype=np.float64)
        polygons.append([round(float(v), 2) for v in xy.ravel()])
    return polygons


def render_scene(rng: np.random.Generator, cfg: SynthConfig) -> tuple[np.ndarray, list[dict[str, Any]]]:
    """One image (uint8 RGB, size x size) and its objects: category (0-based), bbox [x, y, w, h], area
    (visible pixels) and segmentation (polygons of the visible pixels, see mask_polygons)."""
    size = cfg.size
    img = _background(rng, size)
    if cfg.clutter:
        _clutter(rng, img)
    owner = np.full((size, size), -1, dtype=np.int32)  # which object each pixel shows
    drawn: list[tuple[int, int]] = []  # (class, drawn pixel count)
    n = int(rng.integers(1, cfg.max_objects + 1))
    for _ in range(n):
        cls = int(rng.integers(0, cfg.classes))
        lo, hi = cfg.object_scale
        side = float(np.exp(rng.uniform(math.log(lo * size), math.log(hi * size))))
        aspect = float(np.exp(rng.uniform(-0.35, 0.35)))
        w = max(int(side * aspect), 6)
        h = max(int(side / aspect), 6)
        x0 = int(rng.integers(-w // 4, size - 3 * w // 4))
        y0 = int(rng.integers(-h // 4, size - 3 * h // 4))
        mask = shape_mask(
            SHAPES[cls], w, h, float(rng.uniform(0, 2 * math.pi)) if rng.random() < 0.5 else 0.0
        )
        xs0, ys0, xs1, ys1 = max(x0, 0), max(y0, 0), min(x0 + w, size), min(y0 + h, size)
        if xs1 - xs0 < 4 or ys1 - ys0 < 4:
            continue
        sub = mask[ys0 - y0 : ys1 - y0, xs0 - x0 : xs1 - x0].astype(bool)
        region = img[ys0:ys1, xs0:xs1]
        under = region.reshape(-1, 3).mean(axis=0)
        colour = _contrasting_colour(rng, under)
        shade = rng.uniform(0.75, 1.15, (1, 1, 3))
        tex = colour * shade + rng.normal(0, 10, region.shape)
        region[sub] = tex[sub]
        owner[ys0:ys1, xs0:xs1][sub] = len(drawn)
        drawn.append((cls, int(sub.sum())))
    # colour noise over the whole scene: gain, offset, per-pixel noise
    img = (
        img * rng.uniform(0.8, 1.2, 3) + rng.uniform(-20, 20, 3) + rng.normal(0, rng.uniform(2, 9), img.shape)
    )
    objects = []
    for k, (cls, total) in enumerate(drawn):
        if total == 0:
            continue
        ys, xs = np.nonzero(owner == k)
        if len(xs) < MIN_VISIBLE * total or len(xs) < 12:
            continue
        x1, y1, x2, y2 = int(xs.min()), int(ys.min()), int(xs.max()) + 1, int(ys.max()) + 1
        polygons = mask_polygons(owner[y1:y2, x1:x2] == k, (x1, y1))
        if not polygons:  # (a part too thin to outline) its box instead
            polygons = [[x1, y1, x2, y1, x2, y2, x1, y2]]
        objects.append(
            {"category": cls, "bbox": [x1, y1, x2 - x1, y2 - y1], "area": len(xs), "segmentation": polygons}
        )
    return np.clip(img, 0, 255).astype(np.uint8), objects


def _settings(cfg: SynthConfig) -> dict[str, Any]:
    return {"generator": {k: list(v) if isinstance(v, tuple) else v for k, v in asdict(cfg).items()}}


def generated_with(annotations: Path, cfg: SynthConfig, *, split: str | None = None) -> bool:
    """Whether `annotations` is a complete set this generator wrote with exactly these settings."""
    try:
        info = json.loads(Path(annotations).read_text()).get("info", {})
    except (OSError, ValueError):
        return False
    return info.get("split") == (split or "") and info.get("generator") == _settings(cfg)["generator"]


def generate(out: Path, cfg: SynthConfig, *, split: str | None = None) -> Path:
    """Write out/images/*.jpg and out/annotations.json; return the annotations path.

    Written under a temporary name and renamed, so a half-written dataset is never taken for one.
    """
    import cv2

    out = Path(out)
    tmp = out.with_name(out.name + ".tmp")
    if tmp.exists():
        shutil.rmtree(tmp)
    (tmp / "images").mkdir(parents=True)
    rng = np.random.default_rng(
        [cfg.seed, cfg.images, cfg.size, cfg.classes, zlib.crc32((split or "").encode())]
    )
    images, annotations = [], []
    ann_id = 1
    for i in range(cfg.images):
        img, objects = render_scene(rng, cfg)
        name = f"{i:06d}.jpg"
        if not cv2.imwrite(str(tmp / "images" / name), img[:, :, ::-1], [cv2.IMWRITE_JPEG_QUALITY, 92]):
            raise OSError(f"could not write {tmp / 'images' / name}")
        images.append({"id": i + 1, "file_name": name, "width": cfg.size, "height": cfg.size})
        for ob in objects:
            annotations.append(
                {
                    "id": ann_id,
                    "image_id": i + 1,
                    "category_id": ob["category"] + 1,
                    "bbox": ob["bbox"],
                    "area": ob["area"],
                    "segmentation": ob["segmentation"],
                    "iscrowd": 0,
                }
            )
            ann_id += 1
    categories = [{"id": c + 1, "name": SHAPES[c], "supercategory": "shape"} for c in range(cfg.classes)]
    doc = {
        "info": {
            "description": "kslim synthetic shapes",
            "seed": cfg.seed,
            "split": split or "",
            **_settings(cfg),
        },
        "images": images,
        "annotations": annotations,
        "categories": categories,
    }
    (tmp / "annotations.json").write_text(json.dumps(doc))
    if out.exists():
        shutil.rmtree(out)
    os.replace(tmp, out)
    return out / "annotations.json"


def _object_side(text: str) -> tuple[float, float] | None:
    try:
        lo, hi = (float(v) for v in text.split(","))
    except ValueError:
        return None
    return (lo, hi) if 0 < lo <= hi <= 1 else None


def synth_command(
    out: str,
    images: int,
    size: int,
    classes: int,
    seed: int,
    *,
    max_objects: int = 6,
    object_side: str = "0.1,0.5",
    clutter: bool = True,
) -> int:
    """`kslim data synth`: write a synthetic COCO dataset to `out`."""
    if not 1 <= classes <= len(SHAPES):
        print(
            f"kslim: error: --classes must be 1..{len(SHAPES)} (shapes: {', '.join(SHAPES)})", file=sys.stderr
        )
        return EXIT_USER
    if images < 1 or size < 32 or max_objects < 1:
        print("kslim: error: --images and --max-objects must be >= 1 and --size >= 32", file=sys.stderr)
        return EXIT_USER
    scale = _object_side(object_side)
    if scale is None:
        print(
            f"kslim: error: --object-side {object_side!r} must be two shares MIN,MAX with "
            "0 < MIN <= MAX <= 1, e.g. 0.2,0.5",
            file=sys.stderr,
        )
        return EXIT_USER
    cfg = SynthConfig(
        images=images,
        size=size,
        classes=classes,
        seed=seed,
        max_objects=max_objects,
        object_scale=scale,
        clutter=clutter,
    )
    try:
        ann = generate(Path(out), cfg)
    except OSError as e:
        print(
            f"kslim: error: cannot write {out}: {e.strerror or e}; choose a writable --out", file=sys.stderr
        )
        return EXIT_USER
    print(f"wrote {images} images and {ann}")
    return EXIT_OK
