"""Calibration data for quant_post_static: train images preprocessed as the model's infer_cfg.yml
says, fed by name. Paddle 2.6's quant_post_static only takes a paddle.io.DataLoader built with
feed_list (static variables named like the model's inputs) and return_list=False."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import paddle
from kslim_api.contract import Reason

from kslim_runner.data.coco import CocoIndex, read_image
from kslim_runner.errors import UserError
from kslim_runner.measure.preprocess import Preprocess
from kslim_runner.measure.program import ModelFiles, load_program

#: What the preprocessing produces for each input PaddleDetection's exports take.
KNOWN_INPUTS = ("image", "im_shape", "scale_factor")


def feed_vars(files: ModelFiles) -> list[tuple[str, list[int], str]]:
    """(name, shape, dtype) of the model's inputs, in feed order."""
    program = load_program(files)
    block = program.global_block()
    feeds = sorted((op.attr("col"), op.output("Out")[0]) for op in block.ops if op.type == "feed")
    out = []
    for _, name in feeds:
        var = block.var(name)
        out.append((name, list(var.shape), str(var.dtype).replace("paddle.", "")))
    unknown = [n for n, _, _ in out if n not in KNOWN_INPUTS]
    if unknown:
        raise UserError(
            f"ptq: model {files.model} takes inputs {[n for n, _, _ in out]}; kslim can feed only "
            f"{', '.join(KNOWN_INPUTS)} (PaddleDetection's export signature)",
            reason=Reason.INVALID_MODEL,
        )
    return out


def check_calibration_size(images: int | None, batch_num: int, batch_size: int) -> None:
    need = batch_num * batch_size
    if images is not None and images < need:
        raise UserError(
            f"ptq calibrates on batchNum x batchSize = {batch_num} x {batch_size} = {need} images, but "
            f"dataset.train has {images}; lower ptq.batchNum or ptq.batchSize, or add images",
            reason=Reason.INVALID_SPEC,
        )


class CalibrationDataset(paddle.io.Dataset):
    """The first n images of a seeded shuffle of the split, as (input, ...) in feed order."""

    def __init__(
        self,
        index: CocoIndex,
        pre: Preprocess,
        names: list[str],
        n: int,
        seed: int,
        on_item: Callable[[], None] | None = None,
    ) -> None:
        super().__init__()
        self.index, self.pre, self.names = index, pre, names
        self.rows = np.random.default_rng(seed).permutation(len(index))[:n].tolist()
        self.on_item = on_item  # progress: the loader runs in this process (num_workers=0)

    def __len__(self) -> int:
        return len(self.rows)

    def __getitem__(self, i: int) -> tuple[np.ndarray, ...]:
        image, im_shape, scale = self.pre(read_image(self.index.files[self.rows[i]]))
        values = {"image": image, "im_shape": im_shape, "scale_factor": scale}
        if self.on_item is not None:
            self.on_item()
        return tuple(values[n] for n in self.names)


def calibration_loader(
    feeds: list[tuple[str, list[int], str]],
    pre: Preprocess,
    index: CocoIndex,
    batch_size: int,
    batch_num: int,
    seed: int,
    on_item: Callable[[], None] | None = None,
) -> Any:
    """A DataLoader over batch_num batches feeding `feeds` (from feed_vars); static mode must be on."""
    check_calibration_size(len(index), batch_num, batch_size)
    with paddle.static.program_guard(paddle.static.Program(), paddle.static.Program()):
        variables = [paddle.static.data(name, [-1, *shape[1:]], dtype) for name, shape, dtype in feeds]
    dataset = CalibrationDataset(index, pre, [n for n, _, _ in feeds], batch_num * batch_size, seed, on_item)
    return paddle.io.DataLoader(
        dataset,
        feed_list=variables,
        return_list=False,
        batch_size=batch_size,
        shuffle=False,
        drop_last=True,
        num_workers=0,
    )
