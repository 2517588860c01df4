"""The pipeline's checkpoint: which stages are done, what they produced, and the report rows.
Kept in <output>/state.json, replaced atomically after every stage."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from kslim_runner.atomic import write_json

STATE_FILE = "state.json"
STATE_VERSION = 1


@dataclass
class Row:
    """One model of the chain (the baseline, then one per strategy step): how to load it and what it
    measured. Paths are relative to the output folder when inside it."""

    name: str
    method: str
    label: str
    model: dict[str, Any]
    export_dir: str | None = None
    train: dict[str, Any] | None = None
    eval: dict[str, Any] | None = None
    eval_training: dict[str, Any] | None = None
    cost: dict[str, Any] | None = None
    latency: dict[str, Any] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Row:
        return cls(**d)


@dataclass
class PipelineState:
    spec_hash: str
    done: dict[str, dict[str, Any]] = field(default_factory=dict)
    rows: list[Row] = field(default_factory=list)
    version: int = STATE_VERSION

    def to_dict(self) -> dict[str, Any]:
        return {
            "version": self.version,
            "specHash": self.spec_hash,
            "done": self.done,
            "rows": [asdict(r) for r in self.rows],
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> PipelineState:
        return cls(
            spec_hash=d["specHash"],
            done=d.get("done", {}),
            rows=[Row.from_dict(r) for r in d.get("rows", [])],
            version=int(d.get("version", STATE_VERSION)),
        )

    def row(self, name: str) -> Row:
        for r in self.rows:
            if r.name == name:
                return r
        raise KeyError(name)

    def put_row(self, row: Row) -> None:
        """Replace the row of the same name where it stands (the chain's order is the report's
        order), or append a new one."""
        for i, r in enumerate(self.rows):
            if r.name == row.name:
                self.rows[i] = row
                return
        self.rows.append(row)


def load_state(out: Path) -> PipelineState | None:
    path = Path(out) / STATE_FILE
    if not path.is_file():
        return None
    try:
        d = json.loads(path.read_text())
        if d.get("version") != STATE_VERSION:
            return None
        return PipelineState.from_dict(d)
    except (json.JSONDecodeError, KeyError, TypeError):
        return None  # an unreadable checkpoint means starting over, not failing


def save_state(out: Path, state: PipelineState) -> None:
    write_json(Path(out) / STATE_FILE, state.to_dict())
