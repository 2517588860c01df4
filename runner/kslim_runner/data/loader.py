"""Paddle datasets and loaders over a CocoIndex: worker processes for decoding and augmentation,
and a resumable, seeded batch order (a resumed run sees the batches it has not seen yet)."""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import paddle

from kslim_runner.data.coco import CocoIndex, read_image
from kslim_runner.data.transforms import AugmentConfig, eval_transform, train_transform


class TrainDataset(paddle.io.Dataset):
    """Index k = epoch * n + i: sample i with augmentation seeded by (seed, k), so data are
    reproducible and a resumed run continues the same stream."""

    def __init__(self, index: CocoIndex, size: int, seed: int, aug: AugmentConfig = AugmentConfig()) -> None:
        super().__init__()
        self.index, self.size, self.seed, self.aug = index, size, seed, aug

    def __len__(self) -> int:
        return len(self.index)

    def __getitem__(self, k: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        i = int(k) % len(self.index)
        rng = np.random.default_rng([self.seed, int(k)])
        img = read_image(self.index.files[i])
        return train_transform(img, self.index.boxes[i], self.index.labels[i], self.size, rng, self.aug)


class ResumableBatchSampler(paddle.io.Sampler):
    """Endless shuffled batches (per-epoch permutation seeded by (seed, epoch)), starting at a step."""

    def __init__(
        self, n: int, batch_size: int, seed: int, start_step: int = 0, steps: int | None = None
    ) -> None:
        self.n, self.batch_size, self.seed = n, batch_size, seed
        self.start_step, self.steps = start_step, steps

    def _stream(self) -> Iterator[int]:
        per_epoch = self.n
        first = self.start_step * self.batch_size
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
            yield [next(stream) for _ in range(self.batch_size)]
            made += 1

    def __len__(self) -> int:
        return self.steps if self.steps is not None else 2**31 - 1


def _worker_init(worker_id: int) -> None:
    import cv2

    cv2.setNumThreads(1)  # the worker processes are the parallelism


def train_loader(
    index: CocoIndex, size: int, batch_size: int, seed: int, *, workers: int, start_step: int, steps: int
) -> paddle.io.DataLoader:
    sampler = ResumableBatchSampler(
        len(index), batch_size, seed, start_step=start_step, steps=steps - start_step
    )
    return paddle.io.DataLoader(
        TrainDataset(index, size, seed),
        batch_sampler=sampler,
        num_workers=workers,
        use_shared_memory=workers > 0,
        worker_init_fn=_worker_init if workers > 0 else None,
        prefetch_factor=4,
        return_list=True,
    )


class EvalDataset(paddle.io.Dataset):
    """Evaluation samples: (image, im_shape, scale_factor, row) in the index's order."""

    def __init__(self, index: CocoIndex, size: int) -> None:
        super().__init__()
        self.index, self.size = index, size

    def __len__(self) -> int:
        return len(self.index)

    def __getitem__(self, i: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        img = read_image(self.index.files[i])
        image, im_shape, scale = eval_transform(img, self.size)
        return image, im_shape, scale, np.array([i], dtype=np.int64)
