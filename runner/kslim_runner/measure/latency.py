"""Latency of an exported detector with Paddle Inference: warm-up, then N timed runs."""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from kslim_runner.measure.predictor import PredictorOptions, create_predictor, run_detector
from kslim_runner.measure.preprocess import load_preprocess
from kslim_runner.measure.program import model_files


@dataclass
class Latency:
    p50: float
    p90: float
    mean: float
    runs: int
    batchSize: int
    threads: int
    device: str
    precision: str

    def to_dict(self) -> dict:
        return asdict(self)


def summarize(ms: list[float]) -> tuple[float, float, float]:
    a = np.asarray(ms, dtype=np.float64)
    return (
        round(float(np.percentile(a, 50)), 4),
        round(float(np.percentile(a, 90)), 4),
        round(float(a.mean()), 4),
    )


def measure_latency(
    model_dir: Path,
    *,
    opts: PredictorOptions,
    batch_size: int = 1,
    warmup: int = 10,
    iterations: int = 100,
    sample: np.ndarray | None = None,
) -> Latency:
    """Time predictor.run() with inputs copied in (as an application would), on a real-looking image."""
    files = model_files(model_dir)
    pre = load_preprocess(model_dir)
    predictor = create_predictor(files, opts)
    if sample is None:
        rng = np.random.default_rng(0)
        sample = rng.integers(0, 255, (*pre.target_size, 3), dtype=np.uint8)
    image, im_shape, scale = pre(sample)
    image = np.repeat(image[None], batch_size, axis=0)
    im_shape = np.repeat(im_shape[None], batch_size, axis=0)
    scale = np.repeat(scale[None], batch_size, axis=0)
    for _ in range(warmup):
        run_detector(predictor, image, im_shape, scale)
    times = []
    for _ in range(iterations):
        t = time.perf_counter()
        run_detector(predictor, image, im_shape, scale)
        times.append((time.perf_counter() - t) * 1000)
    p50, p90, mean = summarize(times)
    return Latency(
        p50=p50,
        p90=p90,
        mean=mean,
        runs=iterations,
        batchSize=batch_size,
        threads=opts.threads,
        device=opts.device,
        precision=opts.precision,
    )
