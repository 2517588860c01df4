"""report.md: the table a person reads, in the seed's column order (Model, Compression technique,
GFLOPs, Model volume, Input size, latency, Box AP), then the details."""

from __future__ import annotations

from typing import Any


def _mb(n: int | None) -> str:
    return "-" if n is None else f"{n / 1e6:.2f}"


def _pct(new: float | None, old: float | None) -> str:
    if new is None or old in (None, 0):
        return ""
    return f" ({(new / old - 1) * 100:+.1f}%)"


def _num(v: float | None, nd: int = 4) -> str:
    return "-" if v is None else f"{v:.{nd}f}"


def _ap(v: float | None) -> str:
    return "-" if v is None else f"{v * 100:.1f}"


def processes(train: dict[str, Any]) -> str:
    """'1', '2', or '4 on 2 nodes (steps 40, 40, 40, 40)': the ranks, and with several nodes each
    rank's own count of its steps (a report that shows every worker took part)."""
    ranks, nodes = train.get("ranks", 1), train.get("nodes", 1)
    if nodes <= 1:
        return str(ranks)
    steps = ", ".join("-" if n is None else str(n) for n in train.get("worker_steps") or [])
    return f"{ranks} on {nodes} nodes (steps {steps})"


def table(report: dict[str, Any]) -> str:
    rows = report["rows"]
    base = rows[0]
    size = report["inputSize"]
    lat_head = f"Latency ({report['device']}, p50 ms)"
    masks = any(r.get("maskAp") is not None for r in rows)  # a Mask AP column for mask models only
    lines = [
        "| Model | Compression technique | GFLOPs | Model volume (MB) | Input size "
        f"| {lat_head} | Box AP | AP50 |" + (" Mask AP |" if masks else ""),
        "| :-- | :-- | --: | --: | :-: | --: | --: | --: |" + (" --: |" if masks else ""),
    ]
    for r in rows:
        g = "-" if r["gflops"] is None else f"{r['gflops']:.3f}"
        size_b = r.get("int8SizeBytes") or r["sizeBytes"]
        lat = r["latencyMs"]
        prec = "int8" if "int8" in lat else "fp32"
        lat_s = "-" if prec not in lat else f"{lat[prec]['p50']:.2f}" + (" (int8)" if prec == "int8" else "")
        ap = _ap(r["ap"])
        if r is not base and r["ap"] is not None and base["ap"] is not None:
            ap += f" ({(r['ap'] - base['ap']) * 100:+.1f})"
        mask_ap = _ap(r.get("maskAp"))
        if r is not base and r.get("maskAp") is not None and base.get("maskAp") is not None:
            mask_ap += f" ({(r['maskAp'] - base['maskAp']) * 100:+.1f})"
        lines.append(
            f"| {report['model']} | {r['label']} "
            f"| {g}{'' if r is base else _pct(r['gflops'], base['gflops'])} "
            f"| {_mb(size_b)}{'' if r is base else _pct(size_b, base['sizeBytes'])} | {size} | {lat_s} "
            f"| {ap} | {_ap(r['ap50'])} |" + (f" {mask_ap} |" if masks else "")
        )
    return "\n".join(lines)


def speedup_lines(report: dict[str, Any]) -> list[str]:
    """Each result's speed-up with its interval, and the load the timing ran under."""
    out = []
    for r in report["rows"][1:]:
        d = r.get("delta") or {}
        if d.get("speedup") is None:
            continue
        if d.get("speedupLow") is not None:
            out.append(
                f"- {r['label']}: speed-up {d['speedup']:.2f}x, p10-p90 {d['speedupLow']:.2f}-"
                f"{d['speedupHigh']:.2f}x over {d['speedupRounds']} interleaved rounds"
            )
        else:
            out.append(f"- {r['label']}: speed-up {d['speedup']:.2f}x (ratio of p50s)")
    load = (report.get("benchmark") or {}).get("loadAverage")
    cpus = (report.get("environment") or {}).get("cpuCount")
    out.append(
        "- every model was timed in one process in interleaved rounds (after its warm-up); speed-up = "
        "median of the per-round ratios to the baseline; load average (1/5/15 min) at the start: "
        + ("/".join(f"{v:.2f}" for v in load) if load else "unknown")
        + (f" on {cpus} CPUs" if cpus else "")
    )
    return out


def render(report: dict[str, Any]) -> str:
    out = [f"# kslim report: {report['job']}", "", table(report), ""]
    gate = report.get("qualityGate")
    if gate is not None:
        out += [f"**Quality gate:** {'passed' if gate['passed'] else 'FAILED'}: {gate['message']}", ""]
    out += [
        "## Details",
        "",
        "| row | AP | AP50 | AP75 | AP S | AP M | AP L | AP in training | params | eval img/s |",
        "| :-- | --: | --: | --: | --: | --: | --: | --: | --: | --: |",
    ]
    for r in report["rows"]:
        ev = r.get("evaluation") or {}
        flag = " ⚠ gap > 0.5" if r.get("apGapFlagged") else ""
        out.append(
            f"| {r['label']} | {_ap(r['ap'])} | {_ap(r['ap50'])} | {_ap(r.get('ap75'))} "
            f"| {_ap(r.get('apSmall'))} "
            f"| {_ap(r.get('apMedium'))} | {_ap(r.get('apLarge'))} | {_ap(r.get('apInTraining'))}{flag} "
            f"| {r['params'] if r['params'] is not None else '-'} | {ev.get('imagesPerSecond', '-')} |"
        )
    out += [
        "",
        "## Latency",
        "",
        "| row | precision | p10 ms | p50 ms | p90 ms | mean ms | runs | batch | threads | device |",
        "| :-- | :-- | --: | --: | --: | --: | --: | --: | --: | :-- |",
    ]
    for r in report["rows"]:
        for prec, lat in (r.get("latency") or {}).items():
            out.append(
                f"| {r['label']} | {prec} | {_num(lat.get('p10'), 3)} | {lat['p50']:.3f} "
                f"| {lat['p90']:.3f} | {lat['mean']:.3f} | {lat['runs']} | {lat['batchSize']} "
                f"| {lat['threads']} | {lat['device']} |"
            )
    out += ["", *speedup_lines(report)]
    trained = [r for r in report["rows"] if r.get("train")]
    if trained:
        out += [
            "",
            "## Training",
            "",
            "| row | steps | resumed at | seconds | s/step | images/s | processes | global batch "
            "| final loss |",
            "| :-- | --: | --: | --: | --: | --: | :-- | --: | --: |",
        ]
        for r in trained:
            t = r["train"]
            out.append(
                f"| {r['label']} | {t['iterations']} | {t['start_step']} | {t['seconds']} "
                f"| {t['step_seconds']} | {t['images_per_second']} | {processes(t)} "
                f"| {t.get('global_batch') or '-'} | {_num(t['final_loss'])} |"
            )
    notes = [(r["label"], n) for r in report["rows"] for n in r.get("notes", [])]
    if notes:
        out += ["", "## Notes", ""] + [f"- {label}: {n}" for label, n in notes]
    env = report["environment"]
    out += [
        "",
        "## Environment",
        "",
        f"- device: {report['device']} ({report['deviceReason']}); seed {report['seed']}; dataset sha256 "
        f"{report['datasetHash'][:16]}",
        "- " + ", ".join(f"{k} {v}" for k, v in env["versions"].items()),
        f"- GFLOPs are conv + matmul multiply-adds per image at {report['inputSize']} px "
        "(PaddleDetection's convention); AP is COCO box AP (pycocotools) of the exported model run "
        "through Paddle Inference"
        + (
            "; Mask AP is COCO mask (segm) AP of the same run."
            if any(r.get("maskAp") is not None for r in report["rows"])
            else "."
        ),
        "",
    ]
    return "\n".join(out)
