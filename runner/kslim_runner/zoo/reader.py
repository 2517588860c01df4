"""Training batches for a PaddleDetection model: the config's own TrainReader transforms (what its
loss expects: YOLO targets, padded boxes, RCNN's list-valued ground truth, ...) over a COCO split,
in the runner's seeded, resumable batch order (so a resumed run and every data-parallel rank see
exactly the images they would have seen).

Differences from PaddleDetection's own reader, all deliberate: the batch size is the job's
(`train.batchSize`), the order is the runner's sampler, each sample's random augmentation is seeded
by (seed, sample number), and mix-up/mosaic stay on for the whole run when the config enables them
(their `*_epoch` limits count epochs of PaddleDetection's schedule, which the runner does not use).
"""

from __future__ import annotations

import random
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import paddle
from kslim_api.contract import Reason

from kslim_runner.data.coco import CocoIndex
from kslim_runner.data.loader import ResumableBatchSampler
from kslim_runner.errors import UserError
from kslim_runner.zoo.config import ZooSource, fit_config
from kslim_runner.zoo.lib import ppdet

#: TrainReader keys PaddleDetection passes to the dataset (which samples get mixed).
DATASET_KWARGS = ("mixup_epoch", "cutmix_epoch", "mosaic_epoch", "pre_img_epoch")
#: Sample fields PaddleDetection's COCODataSet fills.
COCO_FIELDS = ("image", "gt_bbox", "gt_class", "is_crowd", "gt_poly")


def data_fields(cfg: dict[str, Any]) -> list[str]:
    """The sample fields the model trains on: the config's TrainDataset's, else boxes (and polygons
    for a model with a mask head)."""
    dataset = cfg.get("TrainDataset")
    configured = (
        dataset.get("data_fields") if isinstance(dataset, dict) else getattr(dataset, "data_fields", None)
    )
    if configured:  # only what a COCO split provides (VOC configs also ask for `difficult`)
        return [f for f in configured if f in COCO_FIELDS]
    fields = ["image", "gt_bbox", "gt_class", "is_crowd"]
    if (cfg.get(cfg["architecture"]) or {}).get("mask_head"):
        fields.append("gt_poly")
    return fields


def coco_dataset(index: CocoIndex, fields: list[str]) -> Any:
    """PaddleDetection's COCODataSet over a split the prepare stage checked (images without boxes
    and crowd boxes are left out of training, as PaddleDetection does)."""
    ppdet()
    from ppdet.data.source.coco import COCODataSet

    ds = COCODataSet(
        dataset_dir=str(index.images_dir),
        image_dir="",
        anno_path=str(Path(index.annotations).resolve()),
        data_fields=fields,
    )
    ds.parse_dataset()
    if not ds.roidbs:
        raise UserError(
            f"{index.annotations}: no training image has a non-crowd box; PaddleDetection models train "
            "on annotated images",
            reason=Reason.DATA_NOT_FOUND,
        )
    return ds


class SeededSamples(paddle.io.Dataset):
    """Sample k of the endless stream: image k mod n, its random transforms seeded by (seed, k)."""

    def __init__(self, dataset: Any, seed: int) -> None:
        self.dataset, self.seed = dataset, seed

    def __len__(self) -> int:
        return len(self.dataset.roidbs)

    def __getitem__(self, k: int) -> Any:
        sample_seed = (self.seed * 1_000_003 + k) % 2**32
        np.random.seed(sample_seed)  # PaddleDetection's transforms draw from both generators
        random.seed(sample_seed)
        return self.dataset[k % len(self)]


@dataclass
class ReaderBatches:
    """The batch source the training loop asks for batches (see train/loop.BatchSource)."""

    source: ZooSource
    index: CocoIndex

    def loader(
        self,
        *,
        batch_size: int,
        seed: int,
        workers: int,
        start_step: int,
        steps: int,
        rank: int = 0,
        world: int = 1,
    ) -> Iterable[dict[str, Any]]:
        ppdet()
        from ppdet.data.reader import BatchCompose, Compose

        cfg, _ = fit_config(self.source)
        reader = cfg.get("TrainReader") or {}
        num_classes = self.source.num_classes
        ds = coco_dataset(self.index, data_fields(cfg))
        ds.set_transform(Compose(reader.get("sample_transforms") or [], num_classes=num_classes))
        ds.set_kwargs(**{k: reader[k] for k in DATASET_KWARGS if k in reader})
        collate = BatchCompose(
            reader.get("batch_transforms") or [], num_classes, bool(reader.get("collate_batch", True))
        )
        samples = SeededSamples(ds, seed)
        sampler = ResumableBatchSampler(
            len(samples),
            batch_size,
            seed,
            start_step=start_step,
            steps=steps - start_step,
            rank=rank,
            world=world,
        )
        if workers == 0:
            # in this thread: paddle 2.6's single-process DataLoader runs the dataset in a helper
            # thread that hangs the loop, instead of raising, when a transform fails
            batches: Iterable[dict[str, Any]] = (
                _to_tensors(collate([samples[k] for k in ks])) for ks in sampler
            )
        else:
            batches = paddle.io.DataLoader(
                samples,
                batch_sampler=sampler,
                collate_fn=collate,
                num_workers=workers,
                use_shared_memory=False,
                return_list=False,
            )
        per_epoch = len(samples)
        for step, batch in enumerate(batches, start=start_step):
            # models that change behaviour after some epochs (PP-YOLOE's assigner) read epoch_id
            batch["epoch_id"] = step * batch_size * world // per_epoch
            yield batch

    def check(self, batch: Any) -> None:
        """Images are checked by the prepare stage and PaddleDetection's Decode raises on a bad one."""


def _to_tensors(batch: dict[str, Any]) -> dict[str, Any]:
    """A collated batch as the DataLoader would hand it over: arrays (or lists of arrays) as tensors."""

    def conv(v: Any) -> Any:
        if isinstance(v, np.ndarray):
            return paddle.to_tensor(v)
        if isinstance(v, list) and v and isinstance(v[0], np.ndarray):
            return [paddle.to_tensor(x) for x in v]
        return v

    return {k: conv(v) for k, v in batch.items()}
