"""export: every row's model as a Paddle inference model with PaddleDetection's signature."""

from __future__ import annotations

from typing import Any

from kslim_runner.pipeline.context import RunContext
from kslim_runner.pipeline.models import export_model, load_row_model
from kslim_runner.pipeline.stage import Stage
from kslim_runner.progress import Progress


class ExportStage(Stage):
    key = stage = "export"

    def run(self, ctx: RunContext) -> dict[str, Any]:
        progress = Progress(self.stage, len(ctx.rows))
        progress.emit()  # 0%: a large model's export takes a while before its row is done
        exported = []
        for i, row in enumerate(list(ctx.rows)):
            if row.export_dir is None:
                det = load_row_model(row.model, ctx.path)
                out = export_model(det, ctx.out / "models" / row.name, ctx.labels)
                row.export_dir = ctx.rel(out)
                ctx.put_row(row)
                exported.append(row.name)
            progress.update(i + 1)
        progress.close()
        return {"exported": exported, "model": ctx.rows[-1].export_dir}
