"""Tiny synthetic COCO datasets for the runner and method tests (seconds to make, CPU)."""

from __future__ import annotations

from pathlib import Path

from kslim_runner.data.synth import SynthConfig, generate


def tiny_coco(root: Path, size: int, seed: int, train: int = 24, val: int = 8) -> Path:
    """root/{train,val}/{images,annotations.json}: `train` + `val` images at `size` px, 3 classes."""
    generate(root / "train", SynthConfig(images=train, size=size, classes=3, seed=seed), split="train")
    generate(root / "val", SynthConfig(images=val, size=size, classes=3, seed=seed), split="val")
    return root
