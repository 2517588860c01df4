"""Resumable training checkpoints: one folder, replaced atomically every N steps."""

from __future__ import annotations

import json
import os
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import paddle


@dataclass
class Checkpoint:
    step: int
    model: dict[str, Any]
    optimizer: dict[str, Any]
    ema: dict[str, Any] | None
    meta: dict[str, Any]


def save_checkpoint(folder: Path, ckpt: Checkpoint) -> None:
    folder = Path(folder)
    tmp = folder.with_name(folder.name + ".tmp")
    if tmp.exists():
        shutil.rmtree(tmp)
    tmp.mkdir(parents=True)
    paddle.save(ckpt.model, str(tmp / "model.pdparams"))
    paddle.save(ckpt.optimizer, str(tmp / "optimizer.pdopt"))
    if ckpt.ema is not None:
        paddle.save(ckpt.ema, str(tmp / "ema.pdema"))
    (tmp / "checkpoint.json").write_text(json.dumps({"step": ckpt.step, **ckpt.meta}))
    old = folder.with_name(folder.name + ".old")
    if folder.exists():
        if old.exists():
            shutil.rmtree(old)
        os.replace(folder, old)
    os.replace(tmp, folder)
    if old.exists():
        shutil.rmtree(old)


def load_checkpoint(folder: Path) -> Checkpoint | None:
    """The checkpoint in folder (or its previous copy if a save was interrupted), else None."""
    for cand in (Path(folder), Path(folder).with_name(Path(folder).name + ".old")):
        meta_path = cand / "checkpoint.json"
        if meta_path.is_file():
            meta = json.loads(meta_path.read_text())
            ema_path = cand / "ema.pdema"
            return Checkpoint(
                step=int(meta.pop("step")),
                model=paddle.load(str(cand / "model.pdparams")),
                optimizer=paddle.load(str(cand / "optimizer.pdopt")),
                ema=paddle.load(str(ema_path)) if ema_path.is_file() else None,
                meta=meta,
            )
    return None
