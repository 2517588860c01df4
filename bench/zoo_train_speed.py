"""YOLOv3-MobileNetV1 training speed: kslim's built-in detector against PaddleDetection's, side by side.

    python bench/zoo_train_speed.py [--steps 20] [--rounds 3] [--width 0.25] [--size 160] [--batch 8]
                                    [--workers 0] [--processes 1] [--only builtin,ppdet,...]

The defaults are the quick-start demo's model and batch (examples/quickstart.yaml, `make demo`:
width 0.25, 160 px, batch 8, workers 0); --processes 1 keeps the model's cost apart from
data-parallel scaling (`bench/train_speed.py` measures that). Rows, all at the same backbone width
and input size, 3 classes, on synthetic COCO (`kslim_runner.data.synth`):

- builtin: kslim's own YOLOv3-MobileNetV1 (`kslim_runner.models`), the runner's transforms
  (`train.loop.CocoBatches`, a job's default augmentation)
- ppdet: PaddleDetection 2.6's YOLOv3-MobileNetV1 from kslim's shorthand config
  `zoo/configs/yolov3_mobilenet_v1.yml` (ZooSource with width = MobileNet's scale,
  `zoo.build.build_model`), trained through its config's own TrainReader transforms
  (`zoo.reader.ReaderBatches`), as a CompressionJob trains it. Its YOLOv3FPN has fixed channels
  (512/256/128, tips 1024/512/256) whatever the backbone's width.
- ppdet_tinyfpn, ppdet_csppan: the same config with a neck whose channels a config can set (ppdet
  2.6 registered modules only, written to a scratch config here): PPYOLOTinyFPN
  (`detection_block_channels`) or CustomCSPPAN (`out_channels`, PP-YOLOE's neck), sized to the
  built-in neck's output channels at this width (2 x make_divisible(512 w / 2^i)). YOLOv3Head,
  YOLOv3Loss, the reader and the post-processing are the shorthand's, so DistillYOLOv3Loss and the
  export apply unchanged.

Each round, for each row (the order reversed every other round, so that a shared machine's load
weighs on every row alike): train --steps steps with `train.loop.train_detector` (fresh model,
AdamW, EMA, as a job; images/s over the steps after the loop's 5 warm-up steps); time the row's
batch source alone (--steps batches, nothing trained: data-loading cost per batch); and time
the network's forward, the loss, backward and optimizer + EMA on one fixed batch (the model's own
cost per step; "model-only images/s" is the batch over their sum).
Parameters, exported size and GFLOPs come from each row's model exported as the runner exports it
(`measure.cost.model_cost`: conv multiply-adds of the inference program; RepVGG branches are merged
there) and, for the training graph, from `paddle.flops`.

Prints a Markdown table; writes bench/results/zoo_train_speed.json (with the neck configs of the
extra rows, the machine's load average before and after, and the commit).
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import kslim_runner  # noqa: F401  (zlib before paddle)

HERE = Path(__file__).resolve().parent
CLASSES = 3
ROWS = ("builtin", "ppdet", "ppdet_tinyfpn", "ppdet_csppan")
FIXED_WARM, FIXED_STEPS = 2, 5  # fixed-batch steps left out / timed


def neck_channels(width: float) -> list[int]:
    """The built-in YOLOv3 neck's output channels (its tips), deepest level first."""
    from kslim_runner.api import make_divisible

    return [2 * make_divisible(512 * width / 2**i) for i in range(3)]


def neck_overrides(width: float) -> dict[str, dict[str, Any]]:
    """Config sections that swap YOLOv3FPN for a neck sized like the built-in's at this width."""
    ch = neck_channels(width)
    return {
        "ppdet_tinyfpn": {
            "YOLOv3": {"neck": "PPYOLOTinyFPN"},
            "PPYOLOTinyFPN": {"detection_block_channels": ch},
        },
        "ppdet_csppan": {
            "YOLOv3": {"neck": "CustomCSPPAN"},
            "CustomCSPPAN": {
                "out_channels": ch,
                "act": "leaky_relu",
                "stage_num": 1,
                "block_num": 1,
                "spp": False,
            },
        },
    }


@dataclass
class Row:
    name: str
    label: str
    config: Any  # DetectorConfig | ZooSource


def make_rows(names: list[str], width: float, size: int, scratch: Path) -> list[Row]:
    import yaml
    from kslim_runner.api import DetectorConfig, ZooSource, shorthand_config

    base = shorthand_config("yolov3_mobilenet_v1")
    overrides = neck_overrides(width)
    rows = []
    for name in names:
        if name == "builtin":
            rows.append(
                Row(name, "kslim built-in", DetectorConfig("yolov3_mobilenet_v1", CLASSES, size, width))
            )
        elif name == "ppdet":
            source = ZooSource(str(base), "yolov3_mobilenet_v1", CLASSES, size, width)
            rows.append(Row(name, "ppdet YOLOv3FPN", source))
        else:
            path = scratch / f"{name}.yml"
            path.write_text(yaml.safe_dump({"_BASE_": [str(base)], **overrides[name]}, sort_keys=False))
            neck = overrides[name]["YOLOv3"]["neck"]
            rows.append(Row(name, f"ppdet {neck} (scaled)", ZooSource(str(path), name, CLASSES, size, width)))
    return rows


def build(row: Row) -> Any:
    import paddle
    from kslim_runner.api import build_model

    paddle.seed(0)
    return build_model(row.config)


def train_flops(det: Any, size: int) -> float:
    """Forward GFLOPs (multiply-adds) of the training graph, image to head outputs, by paddle.flops."""
    import paddle

    class Heads(paddle.nn.Layer):  # a ppdet model's forward wants a dict and ends in the loss or NMS
        def __init__(self, m: Any) -> None:
            super().__init__()
            self.m = m

        def forward(self, x: paddle.Tensor) -> Any:
            m = self.m
            if not hasattr(m, "yolo_head"):
                return m(x)
            feats = m.neck(m.backbone({"image": x}))
            return [m.yolo_head.yolo_outputs[i](f) for i, f in enumerate(feats)]

    with contextlib.redirect_stdout(io.StringIO()):
        n = paddle.flops(Heads(det), [1, 3, size, size], print_detail=False)
    return round(n / 1e9, 4)


def costs(row: Row, size: int, labels: list[str], scratch: Path) -> dict[str, Any]:
    from kslim_runner.api import export_model, model_cost

    det = build(row)
    params = sum(int(p.numel()) for p in det.parameters())
    gflops_train = train_flops(det, size)
    out = export_model(det, scratch / "export" / row.name, labels)
    cost = model_cost(out)
    return {
        "params": params,
        "trainGflops": gflops_train,
        "exportGflops": cost["gflops"],
        "exportParams": cost["params"],
        "exportMB": round(cost["sizeBytes"] / 1e6, 2),
    }


def time_loader(det: Any, index: Any, cfg: Any, steps: int) -> list[float]:
    """Seconds per batch of the row's batch source alone (the first batch, start-up, left out)."""
    from kslim_runner.api import batch_source

    source = batch_source(det, index, cfg.augment)
    loader = source.loader(
        batch_size=cfg.batch_size, seed=1, workers=cfg.workers, start_step=0, steps=steps + 1, rank=0, world=1
    )
    times = []
    t0 = time.perf_counter()
    for i, batch in enumerate(loader):
        source.check(batch)
        t = time.perf_counter()
        if i > 0:
            times.append(t - t0)
        t0 = t
    return times


def network_and_loss(det: Any, batch: Any) -> tuple[Any, Any]:
    """default_loss in two parts: the network's head outputs, then a function computing the loss
    from them (YOLOv3Head models; a built-in detector's `loss`)."""
    if isinstance(batch, dict):  # what BaseArch.forward + YOLOv3._forward do in training
        det.inputs = batch
        head = det.yolo_head
        feats = det.neck(det.backbone(batch))
        outs = [head.yolo_outputs[i](f) for i, f in enumerate(feats)]
        return outs, lambda: head.loss(outs, batch, head.anchors)["loss"]
    outs = det(batch[0])
    return outs, lambda: det.loss(outs, batch[1], batch[2])


def time_fixed(det: Any, index: Any, cfg: Any) -> dict[str, float]:
    """Median seconds of the network's forward, the loss, backward and optimizer + EMA on one fixed
    batch (the two parts together are checked against the loop's loss on that batch)."""
    import paddle
    from kslim_runner.api import ModelEMA, batch_source, build_optimizer, default_loss

    source = batch_source(det, index, cfg.augment)
    loader = source.loader(
        batch_size=cfg.batch_size, seed=2, workers=0, start_step=0, steps=1, rank=0, world=1
    )
    batch = next(iter(loader))
    det.train()
    with paddle.utils.unique_name.guard():
        opt = build_optimizer(det, cfg)
    ema = ModelEMA(det, cfg.ema_decay)
    parts: dict[str, list[float]] = {"forward": [], "loss": [], "backward": [], "optimizer": []}
    for i in range(FIXED_WARM + FIXED_STEPS):
        if i == 0:
            with paddle.no_grad():
                want = float(default_loss(det, batch))
        t0 = time.perf_counter()
        _, loss_of = network_and_loss(det, batch)
        t1 = time.perf_counter()
        loss = loss_of()
        t2 = time.perf_counter()
        if i == 0 and abs(float(loss) - want) > 1e-3 * max(1.0, abs(want)):
            raise AssertionError(f"split loss {float(loss)} != the loop's loss {want}")
        loss.backward()
        t3 = time.perf_counter()
        opt.step()
        opt.clear_grad()
        ema.update(det)
        t4 = time.perf_counter()
        if i >= FIXED_WARM:
            for k, v in zip(parts, (t1 - t0, t2 - t1, t3 - t2, t4 - t3), strict=True):
                parts[k].append(v)
    return {k: statistics.median(v) for k, v in parts.items()}


def run_round(row: Row, index: Any, args: argparse.Namespace, scratch: Path) -> dict[str, Any]:
    from kslim_runner.api import AugmentConfig, TrainConfig, train_detector

    cfg = TrainConfig(
        iterations=args.steps,
        batch_size=args.batch,
        learning_rate=0.002,
        warmup_iterations=30,
        workers=args.workers,
        log_every=10**6,
        checkpoint_every=10**6,
        processes=args.processes,
        augment=AugmentConfig(),
    )
    det = build(row)
    work = scratch / f"run-{row.name}"
    shutil.rmtree(work, ignore_errors=True)
    result = train_detector(det, index, cfg, work, stage="baseline")
    loader = time_loader(det, index, cfg, args.steps)
    fixed = time_fixed(det, index, cfg)
    return {
        "imagesPerSecond": result.images_per_second or 0.0,
        "loopStepMs": round((result.step_seconds or 0.0) * 1000, 1),
        "loaderMs": round(statistics.median(loader) * 1000, 1),
        **{f"{k}Ms": round(v * 1000, 1) for k, v in fixed.items()},
    }


def step_ms(run: dict[str, Any]) -> float:
    return run["forwardMs"] + run["lossMs"] + run["backwardMs"] + run["optimizerMs"]


def summarise(name: str, label: str, runs: list[dict[str, Any]], batch: int) -> dict[str, Any]:
    med = {k: round(statistics.median(r[k] for r in runs), 2) for k in runs[0]}
    ms = step_ms(med)
    return {
        "row": name,
        "label": label,
        **med,
        "modelStepMs": round(ms, 1),
        "modelImagesPerSecond": round(batch / (ms / 1000), 2),
        "runs": runs,
    }


def commit() -> str | None:
    try:
        out = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"], cwd=HERE, capture_output=True, text=True, check=True
        )
        return out.stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return None


def table(rows: list[dict[str, Any]]) -> str:
    head = (
        "| model | params | exported MB | GFLOPs (export / train fwd) | images/s (loop) | vs built-in "
        "| loader ms/batch | fwd / loss / bwd / opt+EMA ms | model-only images/s | vs built-in |"
    )
    lines = [head, "| :-- | --: | --: | --: | --: | --: | --: | --: | --: | --: |"]
    for r in rows:
        lines.append(
            f"| {r['label']} | {r['params'] / 1e6:.2f} M | {r['exportMB']:.1f} | "
            f"{r['exportGflops']:.3f} / {r['trainGflops']:.3f} | {r['imagesPerSecond']:.2f} | "
            f"{r['vsBuiltin']:.2f}x | {r['loaderMs']:.0f} | "
            f"{r['forwardMs']:.0f} / {r['lossMs']:.0f} / {r['backwardMs']:.0f} / {r['optimizerMs']:.0f} | "
            f"{r['modelImagesPerSecond']:.2f} | {r['modelVsBuiltin']:.2f}x |"
        )
    return "\n".join(lines)


def measure(
    names: list[str], args: argparse.Namespace, scratch: Path
) -> tuple[list[Row], dict[str, dict[str, Any]], dict[str, list[dict[str, Any]]]]:
    """The rows, their costs and their timings per round."""
    from kslim_runner.api import SynthConfig, generate, load_coco

    generate(scratch / "data", SynthConfig(images=args.images, size=args.size, classes=CLASSES, seed=0))
    index = load_coco(scratch / "data" / "annotations.json", scratch / "data" / "images", CLASSES)
    rows = make_rows(names, args.width, args.size, scratch)
    cost = {r.name: costs(r, args.size, index.category_names, scratch) for r in rows}
    runs: dict[str, list[dict[str, Any]]] = {r.name: [] for r in rows}
    for k in range(args.rounds):
        for row in rows if k % 2 == 0 else rows[::-1]:
            runs[row.name].append(run_round(row, index, args, scratch))
            print(f"round {k + 1}/{args.rounds} {row.name}: {runs[row.name][-1]}", flush=True)
    return rows, cost, runs


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--steps", type=int, default=20, help="training steps per row and round (5 warm up)")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--width", type=float, default=0.25)
    ap.add_argument("--size", type=int, default=160)
    ap.add_argument("--batch", type=int, default=8)
    ap.add_argument("--workers", type=int, default=0, help="loader worker processes (train.workers)")
    ap.add_argument("--processes", type=int, default=1, help="data-parallel processes of the loop")
    ap.add_argument("--images", type=int, default=200, help="synthetic training images to generate")
    ap.add_argument("--only", default=",".join(ROWS), help=f"rows, comma-separated: {','.join(ROWS)}")
    ap.add_argument("--results", default=str(HERE / "results" / "zoo_train_speed.json"))
    args = ap.parse_args(argv)
    names = [n for n in args.only.split(",") if n]
    if not names or any(n not in ROWS for n in names):
        ap.error(f"--only takes some of {','.join(ROWS)}")

    import paddle
    from kslim_runner.api import use_cpu_threads

    threads = use_cpu_threads()
    load_before = os.getloadavg()
    t_start = time.monotonic()
    scratch = Path(tempfile.mkdtemp(prefix="kslim-zoo-train-speed-"))
    try:  # progress lines and pycocotools' chatter to stderr: stdout is the table
        with contextlib.redirect_stdout(sys.stderr):
            rows, cost, runs = measure(names, args, scratch)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)

    out_rows = [{**summarise(r.name, r.label, runs[r.name], args.batch), **cost[r.name]} for r in rows]
    ref = next((r for r in out_rows if r["row"] == "builtin"), None)
    for r in out_rows:
        r["vsBuiltin"] = round(r["imagesPerSecond"] / ref["imagesPerSecond"], 3) if ref else float("nan")
        r["modelVsBuiltin"] = (
            round(r["modelImagesPerSecond"] / ref["modelImagesPerSecond"], 3) if ref else float("nan")
        )
        if ref:  # the same ratios within each round (the rows of a round ran minutes apart at most)
            pairs = list(zip(r["runs"], ref["runs"], strict=True))
            r["vsBuiltinPerRound"] = [round(a["imagesPerSecond"] / b["imagesPerSecond"], 3) for a, b in pairs]
            r["modelVsBuiltinPerRound"] = [round(step_ms(b) / step_ms(a), 3) for a, b in pairs]
    how = f"{args.processes} process(es) x batch {args.batch}, workers {args.workers}"
    run = f"{args.steps} steps, {args.rounds} rounds"
    print(f"\nYOLOv3-MobileNetV1 x{args.width}, {args.size} px, {how}, {run}\n")
    print(table(out_rows))
    out = {
        "model": f"yolov3_mobilenet_v1 x{args.width}",
        "inputSize": args.size,
        "batchSize": args.batch,
        "workers": args.workers,
        "processes": args.processes,
        "steps": args.steps,
        "rounds": args.rounds,
        "neckChannels": neck_channels(args.width),
        "neckConfigs": {k: v for k, v in neck_overrides(args.width).items() if k in names},
        "rows": out_rows,
        "seconds": round(time.monotonic() - t_start),
        "machine": {"cpus": os.cpu_count(), "threads": threads, "paddle": paddle.__version__},
        "loadBefore": [round(x, 2) for x in load_before],
        "loadAfter": [round(x, 2) for x in os.getloadavg()],
        "commit": commit(),
        "date": time.strftime("%Y-%m-%d %H:%M"),
    }
    Path(args.results).write_text(json.dumps(out, indent=2) + "\n")
    print(f"\nwrote {args.results}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
