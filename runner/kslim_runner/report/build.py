"""Pure functions from the pipeline's rows to the report's numbers (contract keys, camelCase)."""

from __future__ import annotations

from typing import Any

from kslim_api.contract import Reason

from kslim_runner.measure.interleave import RatioInterval, ratio_interval
from kslim_runner.pipeline.state import Row

ARCH_NAMES = {
    "yolov3_mobilenet_v1": "YOLOv3-MobileNetV1",
    "yolov3_mobilenet_v3": "YOLOv3-MobileNetV3",
    "yolov3_darknet53": "YOLOv3-DarkNet53",
}
#: Exported and in-training AP further apart than this (fraction; 0.5 AP points) are flagged.
AP_GAP_FLAG = 0.005
#: A speed-up interval wider than this fraction of its median, straddling qualityGate.minSpeedup,
#: cannot decide the gate: the job ends MeasurementUnstable instead of passing or failing by chance.
MAX_SPEEDUP_SPREAD = 0.25


def shipped_precision(row: Row) -> str:
    """The precision a row's model is meant to run at: int8 when it is quantized and was timed so."""
    return "int8" if "int8" in row.latency else "fp32"


def row_metrics(row: Row) -> dict[str, Any]:
    """One model's headline numbers: ap, ap50, gflops, params, sizeBytes, latencyMs (+ int8SizeBytes)."""
    ev, cost = row.eval or {}, row.cost or {}
    out: dict[str, Any] = {
        "ap": ev.get("ap"),
        "ap50": ev.get("ap50"),
        "gflops": cost.get("gflops"),
        "params": cost.get("params"),
        "sizeBytes": cost.get("sizeBytes"),
        "latencyMs": {
            p: {k: v[k] for k in ("p10", "p50", "p90", "mean") if v.get(k) is not None}
            for p, v in row.latency.items()
        },
    }
    if cost.get("int8SizeBytes") is not None:
        out["int8SizeBytes"] = cost["int8SizeBytes"]
    return out


def _ratio(a: float | None, b: float | None, nd: int = 4) -> float | None:
    if a is None or b is None or b == 0:
        return None
    return round(a / b, nd)


def speedup_interval(baseline: Row, result: Row) -> RatioInterval | None:
    """Per-round ratios of the baseline's fp32 latency to the result's shipped precision, when both
    were timed in the same interleaved rounds (benchmark stage); None otherwise."""
    b = baseline.latency.get("fp32") or {}
    r = result.latency.get(shipped_precision(result)) or {}
    if not b.get("session") or b.get("session") != r.get("session"):
        return None
    return ratio_interval(b.get("rounds") or [], r.get("rounds") or [])


def delta(baseline: Row, result: Row) -> dict[str, Any]:
    """result vs baseline: AP difference (fraction), cost ratios, and speed-up of the shipped
    precision over the baseline's fp32: the median of per-round ratios with their p10-p90
    (speedupLow, speedupHigh) when timed side by side, else the ratio of p50s."""
    b, r = row_metrics(baseline), row_metrics(result)
    b_lat = (baseline.latency.get("fp32") or {}).get("p50")
    r_lat = (result.latency.get(shipped_precision(result)) or {}).get("p50")
    ap = None if b["ap"] is None or r["ap"] is None else round(r["ap"] - b["ap"], 6)
    out: dict[str, Any] = {
        "ap": ap,
        "gflopsRatio": _ratio(r["gflops"], b["gflops"]),
        "paramsRatio": _ratio(r["params"], b["params"]),
        "sizeRatio": _ratio(r.get("int8SizeBytes") or r["sizeBytes"], b["sizeBytes"]),
        "speedup": _ratio(b_lat, r_lat, 3),
    }
    interval = speedup_interval(baseline, result)
    if interval is not None:
        out.update(speedup=interval.median, speedupLow=interval.low, speedupHigh=interval.high)
        out["speedupRounds"] = interval.rounds
    return out


def speedup_verdict(d: dict[str, Any], limit: float) -> str:
    """ "pass" when the interval's lower bound reaches the limit, "unstable" when the interval
    straddles it and is too wide to say on which side the model is, else "fail"."""
    s = d.get("speedup")
    if s is None:
        return "fail"
    low, high = d.get("speedupLow", s), d.get("speedupHigh", s)
    if low + 1e-9 >= limit:
        return "pass"
    if high + 1e-9 >= limit and (high - low) > MAX_SPEEDUP_SPREAD * s:
        return "unstable"
    return "fail"


def _speedup_text(d: dict[str, Any]) -> str:
    s = d["speedup"]
    if "speedupLow" not in d:
        return f"{s}x"
    return f"{s}x (p10-p90 of {d['speedupRounds']} rounds: {d['speedupLow']}-{d['speedupHigh']}x)"


def quality_gate(
    gate: Any, d: dict[str, Any], result: dict[str, Any], result_precision: str
) -> dict[str, Any] | None:
    """Check spec.qualityGate (maxAPDrop in points, minSpeedup, maxLatencyMs); None when no limit is set."""
    limits = {
        "maxAPDrop": gate.max_ap_drop,
        "minSpeedup": gate.min_speedup,
        "maxLatencyMs": gate.max_latency_ms,
    }
    if all(v is None for v in limits.values()):
        return None
    misses, checks, unstable = [], [], []
    if gate.max_ap_drop is not None:
        drop = None if d["ap"] is None else -d["ap"] * 100
        checks.append(
            f"AP drop {drop:.2f} points <= {gate.max_ap_drop}" if drop is not None else "AP unknown"
        )
        if drop is None or drop > float(gate.max_ap_drop) + 1e-9:
            misses.append(
                f"AP dropped {drop:.2f} points (limit {gate.max_ap_drop})"
                if drop is not None
                else "AP was not measured"
            )
    if gate.min_speedup is not None:
        verdict = speedup_verdict(d, float(gate.min_speedup))
        text = "unknown" if d["speedup"] is None else _speedup_text(d)
        checks.append(f"speed-up {text} >= {gate.min_speedup}x")
        if verdict == "unstable":
            unstable.append(
                f"speed-up {text} straddles {gate.min_speedup}x and its rounds spread more than "
                f"{MAX_SPEEDUP_SPREAD:.0%} of it: the latency measurement cannot decide minSpeedup; "
                "run on a quieter node (or raise spec.benchmark.iterations)"
            )
        elif verdict == "fail":
            misses.append(f"speed-up {text} is below {gate.min_speedup}x")
    if gate.max_latency_ms is not None:
        lat = (result["latencyMs"].get(result_precision) or {}).get("p50")
        checks.append(f"p50 latency {lat} ms <= {gate.max_latency_ms} ms")
        if lat is None or lat > float(gate.max_latency_ms) + 1e-9:
            misses.append(f"p50 latency {lat} ms is above {gate.max_latency_ms} ms")
    passed = not misses and not unstable
    if passed:
        message = "passed: " + "; ".join(checks)
    elif misses:  # a clear miss decides the gate whatever the latency's spread
        message = "failed: " + "; ".join(misses)
    else:
        message = "undecided: " + "; ".join(unstable)
    out = {
        "passed": passed,
        "message": message,
        "limits": {k: v for k, v in limits.items() if v is not None},
    }
    if unstable and not misses:
        out["reason"] = Reason.MEASUREMENT_UNSTABLE
    return out


def row_entry(row: Row, baseline: Row) -> dict[str, Any]:
    """A row of report.json's `rows`: everything measured about one model of the chain."""
    entry = {
        "name": row.name,
        "method": row.method,
        "label": row.label,
        **row_metrics(row),
        "ap75": (row.eval or {}).get("ap75"),
        "apSmall": (row.eval or {}).get("apSmall"),
        "apMedium": (row.eval or {}).get("apMedium"),
        "apLarge": (row.eval or {}).get("apLarge"),
        # mask AP only for models that output masks
        **{k: (row.eval or {})[k] for k in ("maskAp", "maskAp50") if (row.eval or {}).get(k) is not None},
        "evaluation": row.eval,
        "cost": row.cost,
        "latency": row.latency,
        "train": row.train,
        "model": row.export_dir,
        "weights": row.model.get("weights"),  # a .pdparams another job can start from (model.weights)
        "notes": list(row.notes),
    }
    if row.eval_training is not None:
        entry["apInTraining"] = row.eval_training.get("ap")
        gap = None if row.eval is None else abs(row.eval["ap"] - row.eval_training["ap"])
        entry["apGapFlagged"] = gap is not None and gap > AP_GAP_FLAG
    if row is not baseline:
        entry["delta"] = delta(baseline, row)
    return entry
