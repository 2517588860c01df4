"""Tiny synthetic COCO datasets for the runner and method tests (seconds to make, CPU)."""

from __future__ import annotations

from pathlib import Path

from kslim_runner.data.synth import SynthConfig, generate


def tiny_coco(root: Path, size: int, seed: int) -> Path:
    """root/{train,val}/{images,annotations.json}: 24 + 8 images at `size` px, 3 classes."""
    generate(root / "train", SynthConfig(images=24, size=size, classes=3, seed=seed), split="train")
    generate(root / "val", SynthConfig(images=8, size=size, classes=3, seed=seed), split="val")
    return root
