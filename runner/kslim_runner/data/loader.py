"""Paddle datasets and loaders over a CocoIndex: worker processes for decoding and augmentation,
and a resumable, seeded batch order (a resumed run sees the batches it has not seen yet)."""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import paddle

from kslim_runner.data.coco import CocoIndex, read_image
from kslim_runner.data.transforms import AugmentConfig, train_transform
from kslim_runner.errors import UserError


class TrainDataset(paddle.io.Dataset):
    """Index k = epoch * n + i: sample i with augmentation seeded by (seed, k), so data are
    reproducible and a resumed run continues the same stream.

    Samples are (image, gt_box, gt_label, bad_row). A worker never raises for an image that does not
    decode (paddle's workers turn that into an opaque queue error): it returns bad_row = i, and the
    training process raises the UserError naming the file (see `check_batch`)."""

    def __init__(self, index: CocoIndex, size: int, seed: int, aug: AugmentConfig = AugmentConfig()) -> None:
        super().__init__()
        self.index, self.size, self.seed, self.aug = index, size, seed, aug

    def __len__(self) -> int:
        return len(self.index)

    def __getitem__(self, k: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        i = int(k) % len(self.index)
        rng = np.random.default_rng([self.seed, int(k)])
        try:
            img = read_image(self.index.files[i])
        except UserError:
            image, gt_box, gt_label = train_transform(
                np.zeros((self.size, self.size, 3), np.uint8),
                np.zeros((0, 4), np.float32),
                np.zeros((0,), np.int32),
                self.size,
                rng,
                self.aug,
            )
            return image, gt_box, gt_label, np.array([i], dtype=np.int64)
        sample = train_transform(img, self.index.boxes[i], self.index.labels[i], self.size, rng, self.aug)
        return (*sample, np.array([-1], dtype=np.int64))


def check_batch(index: CocoIndex, bad_rows: paddle.Tensor) -> None:
    """Raise the UserError for the first image of the batch that did not decode."""
    rows = bad_rows.numpy().reshape(-1)
    if rows.max() >= 0:
        read_image(index.files[int(rows[rows >= 0][0])])  # raises, naming the file


class ResumableBatchSampler(paddle.io.Sampler):
    """Endless shuffled batches (per-epoch permutation seeded by (seed, epoch)), starting at a step.

    In data-parallel training each step takes world * batch_size samples from the one stream and
    rank r gets the r-th slice, so the ranks see disjoint images and a resume stays exact."""

    def __init__(
        self,
        n: int,
        batch_size: int,
        seed: int,
        start_step: int = 0,
        steps: int | None = None,
        rank: int = 0,
        world: int = 1,
    ) -> None:
        self.n, self.batch_size, self.seed = n, batch_size, seed
        self.start_step, self.steps = start_step, steps
        self.rank, self.world = rank, world

    def _stream(self) -> Iterator[int]:
        per_epoch = self.n
        first = self.start_step * self.batch_size * self.world
        epoch, offset = divmod(first, per_epoch)
        while True:
            perm = np.random.default_rng([self.seed, epoch]).permutation(self.n)
            for i in perm[offset:]:
                yield int(epoch * self.n + i)
            epoch, offset = epoch + 1, 0

    def __iter__(self) -> Iterator[list[int]]:
        stream = self._stream()
        made = 0
        while self.steps is None or made < self.steps:
            step = [next(stream) for _ in range(self.batch_size * self.world)]
            yield step[self.rank * self.batch_size : (self.rank + 1) * self.batch_size]
            made += 1

    def __len__(self) -> int:
        return self.steps if self.steps is not None else 2**31 - 1


def _worker_init(worker_id: int) -> None:
    import cv2

    cv2.setNumThreads(1)  # the worker processes are the parallelism


def train_loader(
    index: CocoIndex,
    size: int,
    batch_size: int,
    seed: int,
    *,
    workers: int,
    start_step: int,
    steps: int,
    augment: AugmentConfig | None = None,
    rank: int = 0,
    world: int = 1,
) -> paddle.io.DataLoader:
    sampler = ResumableBatchSampler(
        len(index), batch_size, seed, start_step=start_step, steps=steps - start_step, rank=rank, world=world
    )
    return paddle.io.DataLoader(
        TrainDataset(index, size, seed, augment or AugmentConfig()),
        batch_sampler=sampler,
        num_workers=workers,
        use_shared_memory=workers > 0,
        worker_init_fn=_worker_init if workers > 0 else None,
        prefetch_factor=4,
        return_list=True,
    )
