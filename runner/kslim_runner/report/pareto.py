"""pareto.png: AP against latency, one labelled point per row (the baseline marked)."""

from __future__ import annotations

from pathlib import Path
from typing import Any


def plot(report: dict[str, Any], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 4), dpi=110)
    for i, r in enumerate(report["rows"]):
        lat = r["latencyMs"]
        prec = "int8" if "int8" in lat else "fp32"
        if prec not in lat or r["ap"] is None:
            continue
        x, y = lat[prec]["p50"], r["ap"] * 100
        ax.scatter(
            [x],
            [y],
            marker="*" if i == 0 else "o",
            s=140 if i == 0 else 60,
            color="black" if i == 0 else f"C{i}",
            zorder=3,
        )
        ax.annotate(f"{r['label']} ({prec})", (x, y), textcoords="offset points", xytext=(6, 6), fontsize=8)
    ax.set_xlabel(f"p50 latency, ms ({report['device']}, batch {report['benchmark']['batchSize']})")
    ax.set_ylabel("COCO box AP (points)")
    ax.set_title(f"{report['model']} @ {report['inputSize']} px: AP vs latency", fontsize=10)
    ax.grid(True, alpha=0.3)
    fig.tight_layout()
    fig.savefig(str(path), format="png")
    plt.close(fig)
