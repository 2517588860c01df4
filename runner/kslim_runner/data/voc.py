"""Pascal VOC XML annotations -> a COCO instances JSON, so VOC data runs through the same loader and
the same pycocotools evaluation. Categories are the sorted union of the names in all given splits
(the same ids in train and val)."""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET
from dataclasses import dataclass
from pathlib import Path

from kslim_api.contract import Reason

from kslim_runner.atomic import write_text
from kslim_runner.errors import UserError


@dataclass(frozen=True)
class VocObject:
    name: str
    box: tuple[float, float, float, float]  # x1, y1, x2, y2 (VOC pixels are 1-based, inclusive)
    difficult: bool


@dataclass(frozen=True)
class VocImage:
    file_name: str
    width: int
    height: int
    objects: tuple[VocObject, ...]


def _text(node: ET.Element, tag: str, path: Path) -> str:
    found = node.find(tag)
    if found is None or found.text is None:
        raise UserError(f"VOC annotation {path} has no <{tag}>; fix or remove the file")
    return found.text.strip()


def parse_voc(path: Path) -> VocImage:
    try:
        root = ET.parse(path).getroot()
    except (ET.ParseError, OSError) as e:
        raise UserError(f"VOC annotation {path} is not readable XML ({e}); fix or remove it") from e
    size = root.find("size")
    try:
        width = int(float(_text(size, "width", path))) if size is not None else 0
        height = int(float(_text(size, "height", path))) if size is not None else 0
        objects = []
        for ob in root.findall("object"):
            bb = ob.find("bndbox")
            if bb is None:
                raise UserError(f"VOC annotation {path}: an <object> has no <bndbox>")
            x1, y1, x2, y2 = (float(_text(bb, t, path)) for t in ("xmin", "ymin", "xmax", "ymax"))
            diff = ob.find("difficult")
            objects.append(
                VocObject(
                    _text(ob, "name", path),
                    (x1 - 1, y1 - 1, x2, y2),
                    diff is not None and (diff.text or "0").strip() == "1",
                )
            )
    except ValueError as e:
        raise UserError(f"VOC annotation {path} has a non-numeric size or box ({e})") from e
    return VocImage(_text(root, "filename", path), width, height, tuple(objects))


def read_split(xml_dir: Path) -> list[VocImage]:
    xml_dir = Path(xml_dir)
    if not xml_dir.is_dir():
        raise UserError(
            f"VOC annotation folder {xml_dir} not found; check dataset.*.annotations",
            reason=Reason.DATA_NOT_FOUND,
        )
    files = sorted(xml_dir.glob("*.xml"))
    if not files:
        raise UserError(f"VOC annotation folder {xml_dir} holds no .xml files", reason=Reason.EMPTY_DATASET)
    return [parse_voc(f) for f in files]


def category_names(splits: list[list[VocImage]]) -> list[str]:
    return sorted({o.name for split in splits for img in split for o in img.objects})


def to_coco(images: list[VocImage], names: list[str], out_json: Path) -> Path:
    """Write the COCO JSON (difficult objects become iscrowd, which COCO evaluation ignores)."""
    cat_id = {n: i + 1 for i, n in enumerate(names)}
    doc: dict = {
        "images": [],
        "annotations": [],
        "categories": [{"id": i, "name": n, "supercategory": "voc"} for n, i in cat_id.items()],
    }
    for k, img in enumerate(images, start=1):
        doc["images"].append({"id": k, "file_name": img.file_name, "width": img.width, "height": img.height})
        for ob in img.objects:
            x1, y1, x2, y2 = ob.box
            doc["annotations"].append(
                {
                    "id": len(doc["annotations"]) + 1,
                    "image_id": k,
                    "category_id": cat_id[ob.name],
                    "bbox": [x1, y1, x2 - x1, y2 - y1],
                    "area": (x2 - x1) * (y2 - y1),
                    "iscrowd": int(ob.difficult),
                }
            )
    write_text(out_json, json.dumps(doc))
    return out_json
