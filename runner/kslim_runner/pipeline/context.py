"""What every stage gets: the validated job, where things are, the device, and the checkpoint."""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from kslim_api import CompressionJob, StrategyStep
from kslim_api.contract import is_remote

from kslim_runner.data.coco import CocoIndex, load_coco
from kslim_runner.device import DeviceDecision
from kslim_runner.pipeline.state import PipelineState, Row, save_state
from kslim_runner.uris import resolve_uri


def spec_hash(job: CompressionJob) -> str:
    """Identifies what the job computes; a checkpoint of another spec is not resumed."""
    spec = job.spec.model_dump(
        mode="json", by_alias=True, exclude={"run_policy", "template", "resources", "storage"}
    )
    return hashlib.sha256(json.dumps(spec, sort_keys=True).encode()).hexdigest()[:16]


@dataclass
class RunContext:
    job: CompressionJob
    job_dir: Path
    out: Path
    out_uri: str | None
    device: DeviceDecision
    state: PipelineState
    steps: list[StrategyStep]
    _indexes: dict[str, CocoIndex] = field(default_factory=dict)
    _remote: Any = None

    @property
    def spec(self) -> Any:
        return self.job.spec

    @property
    def name(self) -> str:
        return self.job.metadata.name

    # --- paths ---------------------------------------------------------------------------------------
    def resolve(self, uri: str, what: str) -> Path:
        if self._remote is None and is_remote(uri):
            from kslim_runner.storage.fetch import Remote  # only jobs with remote URIs import the S3 client

            self._remote = Remote(self.spec)
        return resolve_uri(uri, self.job_dir, what=what, remote=self._remote)

    def path(self, rel: str) -> Path:
        p = Path(rel)
        return p if p.is_absolute() else self.out / p

    def rel(self, path: Path) -> str:
        path = Path(path)
        try:
            return path.resolve().relative_to(self.out.resolve()).as_posix()
        except ValueError:
            return str(path.resolve())

    def stage_dir(self, key: str) -> Path:
        d = self.out / "stages" / key
        d.mkdir(parents=True, exist_ok=True)
        return d

    def artifact_uri(self, path: Path) -> str:
        source = None if self._remote is None else self._remote.source_of(self.path(str(path)))
        if source is not None:  # a download: named by where it came from, not the cache
            return str(source)
        rel = self.rel(path)
        if self.out_uri is None or Path(rel).is_absolute():
            return str(self.path(rel))
        return f"{self.out_uri.rstrip('/')}/{rel}"

    # --- data ----------------------------------------------------------------------------------------
    def index(self, split: str) -> CocoIndex:
        """The train or val split recorded by the prepare stage (loaded once per process)."""
        if split not in self._indexes:
            info = self.state.done["prepare"]["result"]["data"][split]
            self._indexes[split] = load_coco(
                self.path(info["annotations"]), self.path(info["images"]), self.spec.model.num_classes
            )
        return self._indexes[split]

    def has_split(self, split: str) -> bool:
        return split in self.state.done.get("prepare", {}).get("result", {}).get("data", {})

    @property
    def labels(self) -> list[str]:
        return list(self.state.done["prepare"]["result"]["labels"])

    # --- rows and checkpoint -------------------------------------------------------------------------
    @property
    def rows(self) -> list[Row]:
        return self.state.rows

    def put_row(self, row: Row) -> None:
        self.state.put_row(row)
        self.save()

    def save(self) -> None:
        save_state(self.out, self.state)
