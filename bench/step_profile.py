"""Where a CPU training step's time goes: YOLOv3-MobileNetV1 x0.5 at 160 px, batch 8, one thread
(one training process uses about one core), profiled op by op with paddle.profiler.

    python bench/step_profile.py [--steps 5] [--batch-size 8]

Groups the operators (depthwise and dense convolutions forward and backward, batch norm,
activations, the optimizer, the loss, the rest), prints milliseconds per step, the share of the
step and, for the convolutions, the GFLOP/s they reach (multiply-adds x 2 from the layer shapes;
backward counted as twice the forward). Writes bench/results/step_profile.json.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from pathlib import Path
from typing import Any

import kslim_runner  # noqa: F401  (zlib before paddle)

HERE = Path(__file__).resolve().parent
#: operator-name prefixes (as paddle.profiler names dygraph ops and grad nodes) -> group
GROUPS = (
    ("depthwise conv forward", ("depthwise_conv2d dygraph",)),
    ("depthwise conv backward", ("DepthwiseConv2dGradNode",)),
    ("conv forward", ("conv2d dygraph",)),
    ("conv backward", ("Conv2dGradNode",)),
    ("batch norm", ("batch_norm dygraph", "BatchNormGradNode")),
    ("activations", ("relu dygraph", "ReluGradNode", "leaky_relu dygraph", "LeakyReluGradNode")),
    ("optimizer (AdamW)", ("adamw_ dygraph", "GradNodeAccumulation")),
    ("loss (yolo_loss)", ("yolo_loss dygraph", "YoloLossGradNode")),
)


def group_of(name: str) -> str:
    for group, prefixes in GROUPS:
        if name.startswith(prefixes):
            return group
    return "other"


def conv_gflop(model: Any, image: Any) -> dict[str, float]:
    """Forward GFLOP of the depthwise and the dense convolutions for one batch."""
    import paddle

    totals = {"depthwise": 0.0, "dense": 0.0}

    def hook(layer: Any, inputs: Any, output: Any) -> None:
        cin = inputs[0].shape[1]
        groups = layer._groups
        k = layer.weight.shape[2] * layer.weight.shape[3]
        macs = output.numel().item() * (cin // groups) * k
        kind = "depthwise" if groups == cin and groups > 1 else "dense"
        totals[kind] += 2 * macs / 1e9

    handles = [
        m.register_forward_post_hook(hook) for m in model.sublayers() if isinstance(m, paddle.nn.Conv2D)
    ]
    with paddle.no_grad():
        model(image)
    for h in handles:
        h.remove()
    return totals


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--steps", type=int, default=5)
    ap.add_argument("--batch-size", type=int, default=8)
    ap.add_argument("--results", default=str(HERE / "results" / "step_profile.json"))
    args = ap.parse_args(argv)

    import paddle
    import paddle.profiler as profiler
    from kslim_runner.api import DetectorConfig, build_detector
    from paddle.profiler.profiler_statistic import StatisticData

    paddle.base.core.set_num_threads(1)
    paddle.seed(0)
    det = build_detector(DetectorConfig("yolov3_mobilenet_v1", 3, 160, 0.5))
    det.train()
    opt = paddle.optimizer.AdamW(1e-3, parameters=det.parameters())
    n = args.batch_size
    img = paddle.randn([n, 3, 160, 160])
    box = paddle.to_tensor([[[0.5, 0.5, 0.3, 0.3], [0.3, 0.6, 0.2, 0.25]]] * n, dtype="float32")
    label = paddle.zeros([n, 2], dtype="int32")

    def step() -> None:
        det.loss(det(img), box, label).backward()
        opt.step()
        opt.clear_grad()

    for _ in range(3):
        step()
    t = time.perf_counter()
    for _ in range(args.steps):
        step()
    wall_ms = (time.perf_counter() - t) * 1000 / args.steps
    prof = profiler.Profiler(targets=[profiler.ProfilerTarget.CPU])
    prof.start()
    for _ in range(args.steps):
        step()
        prof.step()
    prof.stop()
    stats = StatisticData(prof.profiler_result.get_data(), prof.profiler_result.get_extra_info())
    ms: dict[str, float] = {}
    for name, item in stats.event_summary.items.items():
        g = group_of(name)
        ms[g] = ms.get(g, 0.0) + item.cpu_time / 1e6 / args.steps
    total = sum(ms.values())
    gflop = conv_gflop(det, img)
    rate = {
        "depthwise conv forward": gflop["depthwise"],
        "depthwise conv backward": 2 * gflop["depthwise"],
        "conv forward": gflop["dense"],
        "conv backward": 2 * gflop["dense"],
    }
    rows = []
    for g in [name for name, _ in GROUPS] + ["other"]:
        v = ms.get(g, 0.0)
        r: dict[str, Any] = {"group": g, "msPerStep": round(v, 1), "share": round(v / total, 3)}
        if g in rate and v > 0:
            r["gflops"] = round(rate[g], 3)
            r["gflopPerSecond"] = round(rate[g] / (v / 1000), 1)
        rows.append(r)
    print(f"| ops (batch {n}, 1 thread) | ms per step | share | GFLOP | GFLOP/s |")
    print("| :-- | --: | --: | --: | --: |")
    for r in rows:
        print(
            f"| {r['group']} | {r['msPerStep']} | {r['share'] * 100:.1f}% "
            f"| {r.get('gflops', '')} | {r.get('gflopPerSecond', '')} |"
        )
    print(f"| all operators | {total:.1f} | 100% | | |")
    print(f"\nstep without the profiler: {wall_ms:.1f} ms ({n / wall_ms * 1000:.1f} images/s)")
    result = {
        "rows": rows,
        "opsMsPerStep": round(total, 1),
        "stepMs": round(wall_ms, 1),
        "batchSize": n,
        "steps": args.steps,
        "convGflopForward": {k: round(v, 3) for k, v in gflop.items()},
        "machine": {"cpus": os.cpu_count(), "platform": platform.platform(), "paddle": paddle.__version__},
        "loadAfter": [round(x, 2) for x in os.getloadavg()],
        "date": time.strftime("%Y-%m-%d"),
    }
    Path(args.results).write_text(json.dumps(result, indent=2) + "\n")
    print(f"wrote {args.results}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
