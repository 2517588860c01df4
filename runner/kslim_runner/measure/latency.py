"""Latency of exported detectors with Paddle Inference: warm-up, then timed runs in interleaved
rounds (measure.interleave), so several models' figures and ratios come from the same moments."""

from __future__ import annotations

import os
import uuid
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from kslim_runner.measure.interleave import round_medians, timed_rounds
from kslim_runner.measure.predictor import PredictorOptions, create_predictor, run_detector, spinning_threads
from kslim_runner.measure.preprocess import load_preprocess
from kslim_runner.measure.program import model_files

#: Rounds a measurement is split into (fewer when there are fewer iterations): enough per-round
#: ratios for a p10-p90 interval, rounds still short enough (~5 calls) to share the same load.
TARGET_ROUNDS = 20


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
    p10: float | None = None
    rounds: list[float] | None = None
    """Median ms of each interleaved round; rounds of models timed together pair up by index."""
    session: str | None = None
    """Which compare_latency call timed it: only rounds of the same session pair up."""
    loadAverage: list[float] | None = None
    """The machine's 1/5/15-minute load average when the timing started."""

    def to_dict(self) -> dict:
        return asdict(self)


def summarize(ms: list[float]) -> tuple[float, float, float]:
    a = np.asarray(ms, dtype=np.float64)
    return (
        round(float(np.percentile(a, 50)), 4),
        round(float(np.percentile(a, 90)), 4),
        round(float(a.mean()), 4),
    )


def latency_inputs(
    model_dir: Path, batch_size: int, sample: np.ndarray | None = None
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


def _latency(
    rounds: list[list[float]], opts: PredictorOptions, batch_size: int, session: str, load: list[float]
) -> Latency:
    times = [t for r in rounds for t in r]
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
        p10=round(float(np.percentile(times, 10)), 4),
        rounds=round_medians(rounds),
        session=session,
        loadAverage=load,
    )


def load_average() -> list[float]:
    try:
        return [round(v, 2) for v in os.getloadavg()]
    except OSError:  # not on every platform
        return []


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
    per_round: int | None = None,
    sample: np.ndarray | None = None,
) -> list[Latency]:
    """Latency of several models (or precisions) timed side by side in one process: after every
    model's warm-up, rounds of `per_round` runs of each in turn (default: iterations split into
    about TARGET_ROUNDS rounds), so a shared machine's load changes weigh on all of them alike and
    per-round ratios hold even when the absolute figures drift."""
    per_round = per_round or max(1, -(-iterations // TARGET_ROUNDS))
    calls = []
    for model_dir, opts in models:
        predictor = create_predictor(model_files(model_dir), opts)
        inputs = latency_inputs(model_dir, batch_size, sample)
        calls.append(lambda p=predictor, x=inputs: run_detector(p, *x))
    session, load = uuid.uuid4().hex[:12], load_average()
    with spinning_threads():
        times = timed_rounds(calls, warmup=warmup, iterations=iterations, per_round=per_round)
    return [_latency(t, opts, batch_size, session, load) for t, (_, opts) in zip(times, models, strict=True)]
