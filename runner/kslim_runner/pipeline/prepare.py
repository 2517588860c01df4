"""prepare: make or find the data, check it (and the weights) so user errors surface before
anything long runs."""

from __future__ import annotations

import hashlib
import importlib.util
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from kslim_api.contract import Reason

from kslim_runner.data import voc
from kslim_runner.data.coco import CocoIndex, check_images, load_coco, require_segmentation
from kslim_runner.data.synth import SynthConfig, generate, generated_with
from kslim_runner.errors import UserError
from kslim_runner.measure.program import model_files
from kslim_runner.pipeline.context import RunContext
from kslim_runner.pipeline.stage import Stage
from kslim_runner.progress import Progress

#: Up to this many images every image is decoded up front; beyond, only existence is checked and a
#: bad image is reported when the loader reaches it.
DECODE_CHECK_LIMIT = 5000


def _synthetic(ctx: RunContext) -> dict[str, tuple[Path, Path]]:
    syn = ctx.spec.dataset.synthetic
    if syn is None:
        from kslim_api.v1alpha1 import SyntheticDataSpec

        syn = SyntheticDataSpec()
    splits = {}
    for split, n in (("train", syn.train_images), ("val", syn.val_images)):
        folder = ctx.out / "data" / split
        ann = folder / "annotations.json"
        cfg = SynthConfig(
            images=n,
            size=syn.image_size,
            classes=syn.classes,
            seed=syn.seed,
            max_objects=syn.max_objects,
            object_scale=(float(syn.min_object_side), float(syn.max_object_side)),
            clutter=syn.clutter,
        )
        if not generated_with(ann, cfg, split=split):  # a rerun with other settings regenerates
            generate(folder, cfg, split=split)
        splits[split] = (folder / "images", ann)
    return splits


def _given(ctx: RunContext) -> dict[str, tuple[Path, Path]]:
    ds = ctx.spec.dataset
    splits = {}
    for split in ("train", "val"):
        s = getattr(ds, split)
        if s is not None:
            splits[split] = (
                ctx.resolve(s.images, f"dataset.{split}.images"),
                ctx.resolve(s.annotations, f"dataset.{split}.annotations"),
            )
    if ds.format == "voc":
        return _voc_as_coco(ctx, splits)
    return splits


def _voc_as_coco(ctx: RunContext, splits: dict[str, tuple[Path, Path]]) -> dict[str, tuple[Path, Path]]:
    """VOC XML folders -> COCO JSONs under <output>/data/<split>/ (one category list for all splits)."""
    parsed = {split: voc.read_split(xml_dir) for split, (_, xml_dir) in splits.items()}
    names = voc.category_names(list(parsed.values()))
    out = {}
    for split, (images, _) in splits.items():
        out[split] = (
            images,
            voc.to_coco(parsed[split], names, ctx.out / "data" / split / "annotations.json"),
        )
    return out


def dataset_hash(paths: list[Path]) -> str:
    h = hashlib.sha256()
    for p in paths:
        h.update(p.read_bytes())
    return h.hexdigest()


def _check_same_categories(a: CocoIndex, b: CocoIndex) -> None:
    if a.category_ids != b.category_ids:
        raise UserError(
            f"{a.annotations} and {b.annotations} define different categories ({a.category_ids} vs "
            f"{b.category_ids}); both splits need the same category ids",
            reason=Reason.CLASS_OUT_OF_RANGE,
        )


def check_zoo_config(ctx: RunContext, weights: Path | None, annotations: Sequence[Path] = ()) -> list[str]:
    """A PaddleDetection config that is missing, broken, names modules PaddleDetection does not know,
    or asks for a download, or a mask model on data without segmentations: user errors now, before
    anything trains. Returns notes for the report."""
    from kslim_runner.pipeline.models import job_model_config
    from kslim_runner.zoo.build import check_input_size
    from kslim_runner.zoo.config import ZooSource, download_fields, fit_config, refuse_downloads
    from kslim_runner.zoo.reader import data_fields

    source = job_model_config(ctx.spec, ctx.resolve)
    assert isinstance(source, ZooSource)
    cfg, notes = fit_config(source)
    check_input_size(source)
    if "gt_poly" in data_fields(cfg):
        why = f"PaddleDetection config {source.config} trains masks (TrainDataset.data_fields has gt_poly)"
        for path in annotations:
            require_segmentation(path, why)
    urls = download_fields(Path(source.config))
    if weights is None:
        refuse_downloads(
            urls,
            f"PaddleDetection config {source.config}",
            "put the .pdparams on a volume and set model.weights, or remove {key} to train from scratch",
        )
    notes += [f"{key} of the config ({url}) is not used: model.weights is" for key, url in urls.items()]
    return notes


def data_summary(index: CocoIndex) -> str:
    """'24 images, 80 boxes (3 crowd boxes and 1 box of 1 px or less not used)'."""
    dropped = [
        f"{n} {what}"
        for n, what in (
            (index.dropped_crowd, "crowd box" + "es" * (index.dropped_crowd != 1)),
            (index.dropped_small, "box" + "es" * (index.dropped_small != 1) + " of 1 px or less"),
        )
        if n
    ]
    tail = f" ({' and '.join(dropped)} not used)" if dropped else ""
    return f"{len(index)} images, {index.num_annotations} boxes{tail}"


class PrepareStage(Stage):
    key = stage = "prepare"

    def run(self, ctx: RunContext) -> dict[str, Any]:
        spec = ctx.spec
        progress = Progress("prepare", 3)
        if "onnx" in spec.export.formats and importlib.util.find_spec("paddle2onnx") is None:
            raise UserError(
                "export.formats asks for onnx but this runner has no paddle2onnx; remove onnx",
                reason=Reason.UNSUPPORTED_FORMAT,
            )
        splits = _synthetic(ctx) if spec.dataset.format == "synthetic" else _given(ctx)
        progress.update(1)
        data: dict[str, Any] = {}
        indexes: dict[str, CocoIndex] = {}
        for split, (images, ann) in splits.items():
            index = load_coco(ann, images, spec.model.num_classes)
            check_images(index, decode=len(index) <= DECODE_CHECK_LIMIT)
            indexes[split] = index
            data[split] = {
                "images": ctx.rel(images),
                "annotations": ctx.rel(ann),
                "count": len(index),
                "boxes": index.num_annotations,
                "droppedCrowd": index.dropped_crowd,
                "droppedSmall": index.dropped_small,
            }
            print(f"kslim: data {split}: {data_summary(index)}", flush=True)
        if "train" in indexes:
            _check_same_categories(indexes["train"], indexes["val"])
        progress.update(2)
        weights = spec.resolved_weights()
        weights_path = None
        if weights is not None:
            weights_path = ctx.resolve(weights.uri, "model.weights")
            if not weights_path.is_file():
                raise UserError(
                    f"weights file {weights_path} not found; check model.weights.uri",
                    reason=Reason.DATA_NOT_FOUND,
                )
        notes = (
            check_zoo_config(ctx, weights_path, [ann for _, ann in splits.values()])
            if spec.model.config is not None
            else []
        )
        inference = None
        if spec.model.inference_model is not None:
            inference = model_files(ctx.resolve(spec.model.inference_model.uri, "model.inferenceModel")).dir
        progress.update(3)
        progress.close()
        return {
            "data": data,
            "labels": indexes["val"].category_names,
            "datasetHash": dataset_hash([p for _, p in splits.values()]),
            "weights": None if weights_path is None else str(weights_path),
            "inferenceModel": None if inference is None else str(inference),
            "notes": notes,
        }
