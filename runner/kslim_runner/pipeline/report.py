"""report: report.json, report.md, pareto.png (written under temp names, then renamed), the
quality gate, and the headline the termination message carries."""

from __future__ import annotations

import datetime
from pathlib import Path
from typing import Any

import yaml

from kslim_runner.atomic import write_json, write_text, write_with
from kslim_runner.pipeline.context import RunContext
from kslim_runner.pipeline.stage import Stage
from kslim_runner.report import markdown, pareto
from kslim_runner.report.build import (
    ARCH_NAMES,
    delta,
    quality_gate,
    row_entry,
    row_metrics,
    shipped_precision,
)
from kslim_runner.report.environment import environment

REPORT_JSON = "report.json"
REPORT_MD = "report.md"
PARETO_PNG = "pareto.png"


def model_name(ctx: RunContext) -> str:
    m = ctx.spec.model
    if m.architecture is not None:
        name = ARCH_NAMES.get(m.architecture.value, m.architecture.value)
        return name if float(m.width) == 1.0 else f"{name} x{m.width}"
    if m.config is not None:  # a PaddleDetection config: its file name, as PaddleDetection names models
        return Path(m.config.uri).stem
    cfg_path = ctx.path(ctx.rows[0].export_dir or "") / "infer_cfg.yml"
    arch = (yaml.safe_load(cfg_path.read_text()) or {}).get("arch") if cfg_path.is_file() else None
    return f"{arch or 'inference model'} (exported)"


def build_report(ctx: RunContext) -> dict[str, Any]:
    rows = ctx.rows
    base, result = rows[0], rows[-1]
    spec = ctx.spec
    prep = ctx.state.done["prepare"]["result"]
    d = delta(base, result)
    res_metrics = row_metrics(result)
    gate = quality_gate(spec.quality_gate, d, res_metrics, shipped_precision(result))
    b = spec.benchmark
    return {
        "apiVersion": "kslim.dev/v1alpha1",
        "kind": "CompressionJobReport",
        "job": ctx.name,
        "namespace": ctx.job.metadata.namespace,
        "generatedAt": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
        "model": model_name(ctx),
        "architecture": None if spec.model.architecture is None else spec.model.architecture.value,
        "inputSize": spec.model.input_size,
        "numClasses": spec.model.num_classes,
        "strategy": [s.method for s in ctx.steps],
        "baseline": row_metrics(base),
        "result": res_metrics,
        "delta": d,
        "qualityGate": gate,
        "rows": [row_entry(r, base) for r in rows],
        "device": ctx.device.device,
        "deviceReason": ctx.device.reason,
        "benchmark": {
            "batchSize": b.batch_size,
            "threads": b.threads,
            "warmup": b.warmup,
            "iterations": b.iterations,
            "tensorrt": b.tensorrt,
        },
        "seed": spec.train.seed,
        "datasetHash": prep["datasetHash"],
        "dataset": {k: {"images": v["count"], "boxes": v["boxes"]} for k, v in prep["data"].items()},
        "environment": environment(),
        "artifacts": {
            "model": ctx.artifact_uri(ctx.path(result.export_dir or "")),
            "report": ctx.artifact_uri(ctx.out / REPORT_JSON),
            "reportMarkdown": ctx.artifact_uri(ctx.out / REPORT_MD),
            "pareto": ctx.artifact_uri(ctx.out / PARETO_PNG),
        },
    }


def headline(report: dict[str, Any]) -> dict[str, Any]:
    """The termination message's body (docs/contracts.md), without outcome/reason/message."""
    return {k: report[k] for k in ("baseline", "result", "delta", "qualityGate", "artifacts")}


class ReportStage(Stage):
    key = stage = "report"

    def run(self, ctx: RunContext) -> dict[str, Any]:
        report = build_report(ctx)
        write_with(ctx.out / PARETO_PNG, lambda tmp: pareto.plot(report, tmp))
        write_text(ctx.out / REPORT_MD, markdown.render(report))
        write_json(ctx.out / REPORT_JSON, report)  # last: its presence means a complete report
        gate = report["qualityGate"]
        return {
            "table": markdown.table(report),
            "headline": headline(report),
            "passed": gate is None or gate["passed"],
            "gateMessage": None if gate is None else gate["message"],
        }
