"""What mask models need besides the model: polygon segmentations in the synthetic data, PadStride
and variable-size batches in the exported model's preprocessing, masks as COCO RLE scored by
pycocotools, a Mask AP in the report only for mask models, and ppdet's R-CNN counts as 1-D tensors."""

from __future__ import annotations

import contextlib
import io
import json
from pathlib import Path

import numpy as np
import yaml
from kslim_runner.data.synth import SynthConfig, generate, mask_polygons
from kslim_runner.measure.coco_eval import EvalResult, coco_stats, encode_mask, image_mask
from kslim_runner.measure.preprocess import load_preprocess, stack_batch
from kslim_runner.pipeline.state import Row
from kslim_runner.report.build import row_entry
from kslim_runner.report.markdown import table
from pycocotools import mask as mask_util
from pycocotools.coco import COCO


def _coco(path: Path) -> COCO:
    with contextlib.redirect_stdout(io.StringIO()):
        return COCO(str(path))


def test_synthetic_objects_have_polygons_of_exactly_their_visible_pixels(tmp_path: Path) -> None:
    ann_path = generate(tmp_path / "ds", SynthConfig(images=12, size=96, classes=3, seed=4))
    coco = _coco(ann_path)
    anns = coco.loadAnns(coco.getAnnIds())
    assert len(anns) > 12
    for a in anns:
        polygons = a["segmentation"]
        assert polygons and all(len(p) >= 6 and len(p) % 2 == 0 for p in polygons)
        m = coco.annToMask(a)  # pycocotools' own rasterisation of the polygons
        ys, xs = np.nonzero(m)
        assert int(m.sum()) == a["area"]  # the visible pixels, no more, no fewer
        assert [xs.min(), ys.min(), xs.max() + 1 - xs.min(), ys.max() + 1 - ys.min()] == a["bbox"]


def test_mask_polygons_outline_every_part_of_a_mask() -> None:
    mask = np.zeros((20, 30), np.uint8)
    mask[2:9, 3:7] = 1  # a 4 x 7 bar
    mask[12:18, 10:25] = 1  # a second part, with a notch
    mask[12:14, 14:17] = 0
    polygons = mask_polygons(mask, offset=(100, 50))
    assert len(polygons) == 2
    xs = [v for p in polygons for v in p[0::2]]
    assert min(xs) == 103.25 and max(xs) == 124.75  # a quarter pixel inside the edges, offset
    rle = mask_util.merge(mask_util.frPyObjects(polygons, 80, 140))
    back = mask_util.decode(rle)[50:70, 100:130]
    assert (back == mask).all()


def _infer_cfg(folder: Path, *ops: dict, mask: bool = False) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    doc = {"arch": "RCNN", "mask": mask, "Preprocess": list(ops), "label_list": ["a"]}
    (folder / "infer_cfg.yml").write_text(yaml.safe_dump(doc))
    return folder


def test_pad_stride_and_batches_of_several_sizes(tmp_path: Path) -> None:
    folder = _infer_cfg(
        tmp_path,
        {"type": "Resize", "target_size": [96, 160], "keep_ratio": True, "interp": 1},
        {"type": "NormalizeImage", "mean": [0.5, 0.5, 0.5], "std": [1, 1, 1], "is_scale": False},
        {"type": "Permute"},
        {"type": "PadStride", "stride": 32},
        mask=True,
    )
    pre = load_preprocess(folder)
    assert pre.pad_stride == 32 and pre.mask and pre.keep_ratio
    image, im_shape, scale = pre(np.full((100, 150, 3), 200, np.uint8))
    assert image.shape == (3, 96, 160)  # 96 x 144 after the resize, then padded to multiples of 32
    assert im_shape.tolist() == [96, 144] and np.allclose(scale, 0.96)
    assert (image[:, :, 144:] == 0).all() and (image[:, :, :144] != 0).all()
    tall = pre(np.full((150, 100, 3), 200, np.uint8))
    assert tall[0].shape == (3, 160, 96)  # 144 x 96, padded
    images, shapes, _ = stack_batch([(image, im_shape, scale), tall])
    assert images.shape == (2, 3, 160, 160) and shapes.tolist() == [[96, 144], [144, 96]]
    assert (images[1, :, :, 96:] == 0).all()
    plain = load_preprocess(_infer_cfg(tmp_path / "yolo", {"type": "Resize", "target_size": [64, 64]}))
    assert plain.pad_stride == 0 and not plain.mask
    assert plain(np.zeros((50, 70, 3), np.uint8))[0].shape == (3, 64, 64)


def test_masks_are_scored_as_rle_and_reported_only_for_mask_models(tmp_path: Path) -> None:
    ann_path = generate(tmp_path / "ds", SynthConfig(images=4, size=64, classes=3, seed=2))
    coco = _coco(ann_path)
    dets = []
    for a in coco.loadAnns(coco.getAnnIds()):
        info = coco.loadImgs(a["image_id"])[0]
        model_out = np.full((2, info["height"] + 8, info["width"] + 5), -1, np.int32)  # a batch's padding
        model_out[1, : info["height"], : info["width"]] = coco.annToMask(a)
        seg = encode_mask(image_mask(model_out, 1, info["height"], info["width"]))
        json.dumps(seg)  # goes into JSON as it is
        assert (mask_util.decode(seg) == coco.annToMask(a)).all()
        dets.append({"image_id": a["image_id"], "category_id": a["category_id"], "bbox": [0, 0, 2, 2]})
        dets[-1].update(score=0.9, segmentation=seg)
    assert coco_stats(ann_path, dets, iou_type="segm")["ap"] == 1.0  # masks right, boxes wrong
    assert coco_stats(ann_path, dets)["ap"] == 0.0

    fields = dict(ap=0.1, ap50=0.2, ap75=0.0, apSmall=None, apMedium=None, apLarge=None, images=4)
    fields.update(detections=3, seconds=1.0, setupSeconds=0.1, imagesPerSecond=4.0)
    boxes_only = EvalResult(**fields).to_dict()  # type: ignore[arg-type]
    assert "maskAp" not in boxes_only and "maskAp50" not in boxes_only
    with_masks = EvalResult(**fields, maskAp=0.3, maskAp50=0.5).to_dict()  # type: ignore[arg-type]
    assert with_masks["maskAp"] == 0.3

    def row(ev: dict) -> Row:
        lat = {"fp32": dict(p50=5.0, p90=6.0, mean=5.0, runs=3, batchSize=1, threads=1, device="cpu")}
        cost = {"gflops": 1.0, "params": 10, "sizeBytes": 1000, "quantized": False}
        return Row(name="b", method="b", label="b", model={}, eval=ev, cost=cost, latency=lat)

    for ev, has_masks in ((boxes_only, False), (with_masks, True)):
        r = row(ev)
        entry = row_entry(r, r)
        assert ("maskAp" in entry) is has_masks
        md = table({"model": "m", "inputSize": 96, "device": "cpu", "rows": [entry]})
        assert ("Mask AP" in md) is has_masks
    assert "| 30.0 |" in md


def test_rcnn_counts_concatenate_as_1d() -> None:
    import kslim_runner  # noqa: F401  (zlib before paddle)
    import paddle
    from kslim_runner.zoo.patches import concat_counts

    n = paddle.shape(paddle.zeros([3, 4]))[0]
    assert n.shape == []  # paddle 2.6: one element is 0-D, which paddle.concat refuses
    assert concat_counts([n, n, paddle.to_tensor([2], dtype=n.dtype)]).tolist() == [3, 3, 2]
