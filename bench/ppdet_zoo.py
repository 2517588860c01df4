"""PaddleDetection's own model configs through kslim's zoo, end to end, on tiny synthetic data.

    python bench/ppdet_zoo.py --configs /path/to/PaddleDetection/configs [--size 160] [--only ppyolo]

For each model config in MODELS (the benchmark rows' models, read from the given PaddleDetection
2.6 `configs/` tree), with kslim's own functions: build the model from the config (random init,
3 classes, --size px: `zoo.config.fit_config`, `zoo.build.build_model`), train it --steps steps at
batch --batch through the config's own TrainReader transforms (`zoo.reader.ReaderBatches`; every
loss must be finite), export it with PaddleDetection's signature (`zoo.export.export_model`),
evaluate the export in Paddle Inference with pycocotools (`measure.coco_eval.evaluate_model`) and
read GFLOPs and parameters from the exported program (`measure.cost.model_cost`).

The AP is near 0 after two steps from scratch: a row shows that the path works, not accuracy.
Each row runs in its own process (ppdet keeps one global config per process; a crash or a hang
stays in its row, which is killed after --timeout seconds). A failing stage is recorded with the
first line of its exception and the stages that do not depend on it still run (an untrained model
still exports). Prints a Markdown table on stdout; ppdet's and Paddle's output and the failing
stages' tracebacks go to stderr.
"""

from __future__ import annotations

import argparse
import json
import math
import subprocess
import sys
import tempfile
import time
import traceback
from pathlib import Path
from typing import Any

import kslim_runner  # noqa: F401  (zlib before paddle)

MODELS = (
    "yolov3/yolov3_mobilenet_v1_270e_coco.yml",
    "yolov3/yolov3_mobilenet_v3_large_270e_coco.yml",
    "yolov3/yolov3_darknet53_270e_coco.yml",
    "ppyolo/ppyolo_mbv3_large_coco.yml",
    "ppyolo/ppyolo_r50vd_dcn_1x_coco.yml",
    "ppyolo/ppyolov2_r50vd_dcn_365e_coco.yml",
    "ssd/ssd_mobilenet_v1_300_120e_voc.yml",
    "mask_rcnn/mask_rcnn_r50_fpn_1x_coco.yml",
    "ppyoloe/ppyoloe_plus_crn_s_80e_coco.yml",
)
CLASSES = 3
COLUMNS = ("config", "built", "train loss", "export", "eval AP", "GFLOPs", "params", "seconds", "error")


def first_line(e: BaseException) -> str:
    text = str(e).strip().splitlines()
    return f"{type(e).__name__}: {text[0] if text else ''}".strip()


def run_row(config: Path, data: Path, work: Path, size: int, steps: int, batch: int) -> dict[str, Any]:
    """Build, train, export, evaluate and cost one config; each stage's failure is recorded."""
    import paddle
    from kslim_runner.api import (
        ReaderBatches,
        ZooSource,
        build_model,
        evaluate_model,
        export_model,
        load_coco,
        model_cost,
    )

    row: dict[str, Any] = {"errors": []}

    def stage(name: str, fn: Any) -> Any:
        try:
            return fn()
        except Exception as e:
            traceback.print_exc()
            row["errors"].append(f"{name}: {first_line(e)}")
            return None

    def train(model: Any) -> list[float]:
        model.train()
        opt = paddle.optimizer.Momentum(
            learning_rate=1e-4, parameters=model.parameters(), grad_clip=paddle.nn.ClipGradByGlobalNorm(10.0)
        )
        batches = ReaderBatches(source, train_set).loader(
            batch_size=batch, seed=0, workers=0, start_step=0, steps=steps
        )
        losses = []
        for b in batches:
            loss = model(b)["loss"]
            loss.backward()
            opt.step()
            opt.clear_grad()
            losses.append(float(loss))
        if len(losses) != steps or not all(math.isfinite(v) for v in losses):
            raise FloatingPointError(f"losses {losses} ({steps} steps expected, all finite)")
        return losses

    paddle.set_device("cpu")
    train_set = load_coco(data / "train" / "annotations.json", data / "train" / "images", CLASSES)
    val_set = load_coco(data / "val" / "annotations.json", data / "val" / "images", CLASSES)
    source = ZooSource(str(config.resolve()), config.stem, CLASSES, size)
    paddle.seed(0)
    model = stage("build", lambda: build_model(source))
    row["built"] = model is not None
    if model is None:
        return row
    losses = stage("train", lambda: train(model))
    row["loss"] = losses[-1] if losses else None
    out = stage("export", lambda: export_model(model, work / "export", val_set.category_names))
    row["export"] = out is not None
    if out is not None:
        ev = stage("eval", lambda: evaluate_model(out, val_set, batch_size=batch))
        row["ap"] = ev.ap if ev else None
        cost = stage("cost", lambda: model_cost(out)) or {}
        row["gflops"], row["params"] = cost.get("gflops"), cost.get("params")
    return row


def spawn_row(name: str, args: argparse.Namespace, data: Path, work: Path) -> dict[str, Any]:
    """run_row in a child process (its output to our stderr), killed after args.timeout seconds."""
    result = work / "row.json"
    cmd = [sys.executable, __file__, "--configs", args.configs, "--row", name, "--data", str(data)]
    cmd += ["--work", str(work), "--size", str(args.size), "--steps", str(args.steps)]
    cmd += ["--batch", str(args.batch)]
    t0 = time.monotonic()
    try:
        proc = subprocess.run(cmd, stdout=sys.stderr, timeout=args.timeout, check=False)
        row = json.loads(result.read_text()) if result.is_file() else {}
        if not result.is_file():
            row["errors"] = [f"the row's process ended with exit code {proc.returncode} and no result"]
    except subprocess.TimeoutExpired:
        row = {"errors": [f"killed after {args.timeout:.0f} s"]}
    row["seconds"] = time.monotonic() - t0
    return row


def cell(value: Any, fmt: str = "{}") -> str:
    if value is None:
        return "–"
    if isinstance(value, bool):
        return "yes" if value else "no"
    return fmt.format(value).replace("|", "\\|")


def table(rows: list[tuple[str, dict[str, Any]]]) -> str:
    lines = ["| " + " | ".join(COLUMNS) + " |", "|" + "---|" * len(COLUMNS)]
    for name, r in rows:
        cells = (
            cell(name),
            cell(r.get("built")),
            cell(r.get("loss"), "{:.4g}"),
            cell(r.get("export")),
            cell(r.get("ap"), "{:.4f}"),
            cell(r.get("gflops"), "{:.3f}"),
            cell(r.get("params"), "{:,}"),
            cell(r.get("seconds"), "{:.0f}"),
            cell((r.get("errors") or [""])[0][:200]),
        )
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--configs", required=True, help="a PaddleDetection configs/ tree (2.6.0)")
    ap.add_argument("--size", type=int, default=160, help="input size, px")
    ap.add_argument("--steps", type=int, default=2, help="training steps")
    ap.add_argument("--batch", type=int, default=2, help="training and evaluation batch size")
    ap.add_argument("--timeout", type=float, default=300.0, help="seconds a row may take")
    ap.add_argument("--only", default="", help="run the rows whose config path contains this text")
    ap.add_argument("--row", help=argparse.SUPPRESS)  # one row, in the child process
    ap.add_argument("--data", help=argparse.SUPPRESS)
    ap.add_argument("--work", help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    configs = Path(args.configs)

    if args.row:
        work = Path(args.work)
        row = run_row(configs / args.row, Path(args.data), work, args.size, args.steps, args.batch)
        (work / "row.json").write_text(json.dumps(row))
        return 0

    names = [m for m in MODELS if args.only in m]
    missing = [m for m in names if not (configs / m).is_file()]
    if missing:
        print(f"not in {configs}: {', '.join(missing)} (give PaddleDetection's configs/)", file=sys.stderr)
        return 2
    from kslim_runner.api import SynthConfig, generate

    rows = []
    with tempfile.TemporaryDirectory(prefix="kslim-ppdet-zoo-") as tmp:
        data = Path(tmp) / "data"
        for split, images in (("train", 8), ("val", 8)):
            generate(data / split, SynthConfig(images=images, size=args.size, classes=CLASSES), split=split)
        for i, name in enumerate(names):
            print(f"[{i + 1}/{len(names)}] {name}", file=sys.stderr, flush=True)
            work = Path(tmp) / f"row{i}"
            work.mkdir()
            rows.append((name, spawn_row(name, args, data, work)))
    print(table(rows))
    return 0


if __name__ == "__main__":
    sys.exit(main())
