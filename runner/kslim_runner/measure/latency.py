"""Latency of an exported detector with Paddle Inference: warm-up, then N timed runs."""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from kslim_runner.measure.predictor import PredictorOptions, create_predictor, run_detector, spinning_threads
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


def _inputs(
    model_dir: Path, batch_size: int, sample: np.ndarray | None
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """A real-looking (or the given) image preprocessed as the model's infer_cfg.yml says, batched."""
    pre = load_preprocess(model_dir)
    if sample is None:
        rng = np.random.default_rng(0)
        sample = rng.integers(0, 255, (*pre.target_size, 3), dtype=np.uint8)
    image, im_shape, scale = pre(sample)
    return (
        np.repeat(image[None], batch_size, axis=0),
        np.repeat(im_shape[None], batch_size, axis=0),
        np.repeat(scale[None], batch_size, axis=0),
    )


def _latency(times: list[float], opts: PredictorOptions, batch_size: int) -> Latency:
    p50, p90, mean = summarize(times)
    return Latency(
        p50=p50,
        p90=p90,
        mean=mean,
        runs=len(times),
        batchSize=batch_size,
        threads=opts.threads,
        device=opts.device,
        precision=opts.precision,
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
    return compare_latency(
        [(model_dir, opts)], batch_size=batch_size, warmup=warmup, iterations=iterations, sample=sample
    )[0]


def compare_latency(
    models: Sequence[tuple[Path, PredictorOptions]],
    *,
    batch_size: int = 1,
    warmup: int = 10,
    iterations: int = 100,
    per_round: int = 10,
    sample: np.ndarray | None = None,
) -> list[Latency]:
    """Latency of several models (or precisions) timed side by side: rounds of `per_round` runs of
    each in turn, so that a shared machine's load changes weigh on all of them alike and their
    ratios hold even when the absolute figures drift."""
    with spinning_threads():
        times = _timed_rounds(models, batch_size, warmup, iterations, per_round, sample)
    return [_latency(t, opts, batch_size) for t, (_, opts) in zip(times, models, strict=True)]


def _timed_rounds(
    models: Sequence[tuple[Path, PredictorOptions]],
    batch_size: int,
    warmup: int,
    iterations: int,
    per_round: int,
    sample: np.ndarray | None,
) -> list[list[float]]:
    runs = []
    for model_dir, opts in models:
        predictor = create_predictor(model_files(model_dir), opts)
        inputs = _inputs(model_dir, batch_size, sample)
        for _ in range(warmup):
            run_detector(predictor, *inputs)
        runs.append((predictor, inputs))
    times: list[list[float]] = [[] for _ in runs]
    while len(times[0]) < iterations:
        n = min(per_round, iterations - len(times[0]))
        for (predictor, inputs), acc in zip(runs, times, strict=True):
            for _ in range(n):
                t = time.perf_counter()
                run_detector(predictor, *inputs)
                acc.append((time.perf_counter() - t) * 1000)
    return times
