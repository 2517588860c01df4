"""Load and check a COCO instances JSON + image folder. Every problem a user can cause is a
UserError that names the file and says what to fix."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from kslim_api.contract import Reason

from kslim_runner.errors import UserError


@dataclass
class CocoIndex:
    """A split as the trainer and evaluator need it (boxes are x1, y1, x2, y2 in pixels)."""

    annotations: Path
    images_dir: Path
    image_ids: list[int]
    files: list[Path]
    sizes: list[tuple[int, int]]  # (height, width) from the JSON
    boxes: list[np.ndarray]  # float32 [k, 4]
    labels: list[np.ndarray]  # int32 [k], 0-based contiguous
    category_ids: list[int]  # contiguous label -> COCO category id
    category_names: list[str] = field(default_factory=list)
    dropped_crowd: int = 0
    """Crowd annotations (iscrowd): not trained on; pycocotools ignores them when scoring."""
    dropped_small: int = 0
    """Boxes 1 px or less wide or high: no object to learn."""

    def __len__(self) -> int:
        return len(self.files)

    @property
    def num_annotations(self) -> int:
        return int(sum(len(b) for b in self.boxes))


def _read_json(path: Path) -> dict:
    if not path.is_file():
        raise UserError(
            f"annotation file {path} not found; check dataset.*.annotations", reason=Reason.DATA_NOT_FOUND
        )
    try:
        doc = json.loads(path.read_text())
    except UnicodeDecodeError as e:
        raise UserError(f"annotation file {path} is not text ({e.reason}); give a COCO instances JSON") from e
    except json.JSONDecodeError as e:
        raise UserError(
            f"annotation file {path} is not valid JSON (line {e.lineno}, column {e.colno}: {e.msg}); "
            "fix or regenerate it"
        ) from e
    if not isinstance(doc, dict):
        raise UserError(f"annotation file {path} is not a COCO instances JSON object")
    for key in ("images", "annotations", "categories"):
        if not isinstance(doc.get(key), list):
            raise UserError(f"annotation file {path} is not COCO instances JSON: no '{key}' list")
    return doc


def load_coco(
    annotations: Path, images_dir: Path, num_classes: int, *, require_annotations: bool = True
) -> CocoIndex:
    """Parse and check a split. Category ids are mapped to 0..K-1 in sorted order (K <= num_classes)."""
    annotations, images_dir = Path(annotations), Path(images_dir)
    doc = _read_json(annotations)
    try:
        cats = sorted(doc["categories"], key=lambda c: int(c["id"]))
        cat_ids = [int(c["id"]) for c in cats]
        names = [str(c.get("name", c["id"])) for c in cats]
    except (KeyError, TypeError, ValueError) as e:
        raise UserError(f"annotation file {annotations}: a category has no integer 'id' ({e})") from e
    if not cat_ids:
        raise UserError(f"annotation file {annotations} defines no categories")
    if len(cat_ids) > num_classes:
        raise UserError(
            f"annotation file {annotations} has {len(cat_ids)} categories but model.numClasses is "
            f"{num_classes}; "
            f"set model.numClasses to at least {len(cat_ids)}",
            reason=Reason.CLASS_OUT_OF_RANGE,
        )
    label_of = {cid: i for i, cid in enumerate(cat_ids)}
    if not images_dir.is_dir():
        raise UserError(
            f"image folder {images_dir} not found; check dataset.*.images", reason=Reason.DATA_NOT_FOUND
        )
    ids: list[int] = []
    files: list[Path] = []
    sizes: list[tuple[int, int]] = []
    row_of: dict[int, int] = {}
    for img in doc["images"]:
        try:
            iid, name = int(img["id"]), str(img["file_name"])
            h, w = int(img.get("height", 0)), int(img.get("width", 0))
        except (KeyError, TypeError, ValueError) as e:
            raise UserError(f"annotation file {annotations}: an image entry lacks id/file_name ({e})") from e
        row_of[iid] = len(ids)
        ids.append(iid)
        files.append(images_dir / name)
        sizes.append((h, w))
    per_boxes: list[list[list[float]]] = [[] for _ in ids]
    per_labels: list[list[int]] = [[] for _ in ids]
    dropped_crowd = dropped_small = 0
    for ann in doc["annotations"]:
        try:
            iid, cid = int(ann["image_id"]), int(ann["category_id"])
            x, y, bw, bh = (float(v) for v in ann["bbox"])
        except (KeyError, TypeError, ValueError) as e:
            raise UserError(
                f"annotation file {annotations}: annotation {ann.get('id')} is malformed ({e})"
            ) from e
        if cid not in label_of:
            raise UserError(
                f"annotation file {annotations}: annotation {ann.get('id')} has category_id {cid}, "
                f"which is not among its categories {cat_ids}; fix the category ids",
                reason=Reason.CLASS_OUT_OF_RANGE,
            )
        if iid not in row_of:
            raise UserError(
                f"annotation file {annotations}: annotation {ann.get('id')} names unknown image {iid}"
            )
        if ann.get("iscrowd", 0):
            dropped_crowd += 1
            continue
        if bw <= 1 or bh <= 1:
            dropped_small += 1
            continue
        r = row_of[iid]
        per_boxes[r].append([x, y, x + bw, y + bh])
        per_labels[r].append(label_of[cid])
    index = CocoIndex(
        annotations=annotations,
        images_dir=images_dir,
        image_ids=ids,
        files=files,
        sizes=sizes,
        boxes=[np.asarray(b, dtype=np.float32).reshape(-1, 4) for b in per_boxes],
        labels=[np.asarray(lb, dtype=np.int32) for lb in per_labels],
        category_ids=cat_ids,
        category_names=names,
        dropped_crowd=dropped_crowd,
        dropped_small=dropped_small,
    )
    if not ids:
        raise UserError(f"annotation file {annotations} lists no images", reason=Reason.EMPTY_DATASET)
    if require_annotations and index.num_annotations == 0:
        raise UserError(
            f"annotation file {annotations} has zero usable annotations (boxes); a detector cannot "
            "learn or be scored without boxes",
            reason=Reason.EMPTY_DATASET,
        )
    return index


def require_segmentation(annotations: Path, why: str) -> None:
    """Every object a model trains on or is scored against (not crowd, with a box) has a non-empty
    `segmentation` (polygons or RLE); else a UserError naming the file, the annotation and `why`
    (which model asks for masks)."""
    doc = _read_json(Path(annotations))
    for ann in doc["annotations"]:
        if not isinstance(ann, dict) or ann.get("iscrowd", 0):
            continue
        if not ann.get("segmentation"):
            missing = sum(
                1
                for a in doc["annotations"]
                if isinstance(a, dict) and not a.get("iscrowd", 0) and not a.get("segmentation")
            )
            raise UserError(
                f"annotation file {annotations}: annotation {ann.get('id')} has no segmentation "
                f"({missing} of {len(doc['annotations'])} annotations lack one); {why}: give every "
                "object a polygon (or RLE) segmentation, or use a box-only config",
                reason=Reason.MISSING_SEGMENTATION,
            )


def check_images(index: CocoIndex, *, decode: bool = True) -> None:
    """Every listed image exists and (with decode) decodes. Raises UserError naming the first bad file."""
    import cv2

    for f in index.files:
        if not f.is_file():
            raise UserError(
                f"image {f} (listed in {index.annotations}) not found; fix file_name or the images folder",
                reason=Reason.DATA_NOT_FOUND,
            )
        if decode:
            data = np.fromfile(str(f), dtype=np.uint8)
            if data.size == 0 or cv2.imdecode(data, cv2.IMREAD_COLOR) is None:
                raise UserError(
                    f"image {f} does not decode; replace or remove it from {index.annotations}",
                    reason=Reason.CORRUPT_IMAGE,
                )


def read_image(path: Path) -> np.ndarray:
    """Decode an image as RGB uint8 [H, W, 3]; UserError naming the file when it does not decode."""
    import cv2

    data = np.fromfile(str(path), dtype=np.uint8)
    img = cv2.imdecode(data, cv2.IMREAD_COLOR) if data.size else None
    if img is None:
        raise UserError(f"image {path} does not decode; replace or remove it", reason=Reason.CORRUPT_IMAGE)
    return cv2.cvtColor(img, cv2.COLOR_BGR2RGB)
