"""The synthetic COCO generator writes real JPEGs and an instances JSON pycocotools loads."""

from __future__ import annotations

import contextlib
import io
import json
from pathlib import Path

import cv2
import numpy as np
from kslim_runner.cli import main
from kslim_runner.data.synth import SynthConfig, generate, render_scene


def test_kslim_data_synth_writes_a_dataset_pycocotools_loads(tmp_path: Path) -> None:
    from pycocotools.coco import COCO

    out = tmp_path / "ds"
    assert (
        main(
            [
                "data",
                "synth",
                "--out",
                str(out),
                "--images",
                "6",
                "--size",
                "96",
                "--classes",
                "4",
                "--seed",
                "3",
            ]
        )
        == 0
    )
    with contextlib.redirect_stdout(io.StringIO()):
        coco = COCO(str(out / "annotations.json"))
    assert len(coco.getImgIds()) == 6
    assert [c["name"] for c in coco.loadCats(coco.getCatIds())] == ["circle", "square", "triangle", "star"]
    anns = coco.loadAnns(coco.getAnnIds())
    assert len(anns) >= 6
    for img in coco.loadImgs(coco.getImgIds()):
        pixels = cv2.imread(str(out / "images" / img["file_name"]))
        assert pixels is not None and pixels.shape == (96, 96, 3)
    for a in anns:
        x, y, w, h = a["bbox"]
        assert x >= 0 and y >= 0 and x + w <= 96 and y + h <= 96 and w >= 2 and h >= 2 and a["area"] > 0


def test_same_seed_same_data_other_seed_other_data(tmp_path: Path) -> None:
    cfg = SynthConfig(images=3, size=64, classes=3, seed=7)
    a = json.loads(generate(tmp_path / "a", cfg).read_text())["annotations"]
    b = json.loads(generate(tmp_path / "b", cfg).read_text())["annotations"]
    c = json.loads(generate(tmp_path / "c", SynthConfig(images=3, size=64, classes=3, seed=8)).read_text())
    assert a == b
    assert a != c["annotations"]


def test_scenes_are_not_trivial() -> None:
    """Several classes and sizes, cluttered noisy backgrounds, and objects that overlap."""
    rng = np.random.default_rng(0)
    cfg = SynthConfig(images=1, size=128, classes=4)
    classes, sides, overlaps = set(), [], 0
    for _ in range(40):
        img, objs = render_scene(rng, cfg)
        assert img.std() > 10  # not a flat background
        for i, o in enumerate(objs):
            classes.add(o["category"])
            sides.append(max(o["bbox"][2:]))
            for p in objs[:i]:
                x, y, w, h = o["bbox"]
                px, py, pw, ph = p["bbox"]
                overlaps += int(x < px + pw and px < x + w and y < py + ph and py < y + h)
    assert classes == {0, 1, 2, 3}
    assert min(sides) < 24 and max(sides) > 50
    assert overlaps > 0


def test_bad_arguments_exit_2(tmp_path: Path, capsys) -> None:
    assert main(["data", "synth", "--out", str(tmp_path / "x"), "--classes", "99"]) == 2
    assert "--classes" in capsys.readouterr().err


def test_object_sides_objects_per_image_and_clutter_follow_the_settings() -> None:
    """An easier set (the quick start's): larger objects, fewer per image, no distractors."""
    rng = np.random.default_rng(1)
    easy = SynthConfig(images=1, size=160, classes=3, max_objects=3, object_scale=(0.25, 0.45), clutter=False)
    sides, counts = [], []
    for _ in range(40):
        _, objs = render_scene(rng, easy)
        counts.append(len(objs))
        # a visible box is at most the drawn shape (occlusion, the border and rotation only shrink it)
        sides += [max(o["bbox"][2:]) for o in objs]
    assert max(counts) <= 3 and min(counts) >= 1
    assert max(sides) <= 0.45 * 160 * 1.5 + 1  # aspect jitter widens one side by up to e^0.35
    assert np.median(sides) > 0.25 * 160 * 0.8


def test_a_dataset_is_reused_only_when_generated_with_the_same_settings(tmp_path: Path) -> None:
    from kslim_runner.data.synth import generated_with

    cfg = SynthConfig(images=2, size=64, classes=3, seed=1)
    ann = generate(tmp_path / "d", cfg, split="train")
    assert generated_with(ann, cfg, split="train")
    assert not generated_with(ann, cfg, split="val")
    assert not generated_with(
        ann, SynthConfig(images=2, size=64, classes=3, seed=1, clutter=False), split="train"
    )
    assert not generated_with(tmp_path / "missing.json", cfg, split="train")
    ann.write_text("{truncated")
    assert not generated_with(ann, cfg, split="train")


def test_kslim_data_synth_takes_the_quick_starts_settings_and_refuses_bad_ones(tmp_path: Path) -> None:
    from kslim_runner.data.synth import generated_with

    args = ["data", "synth", "--out", str(tmp_path / "qs"), "--images", "3", "--size", "64"]
    quick = ["--max-objects", "4", "--object-side", "0.2,0.5", "--no-clutter"]
    assert main([*args, *quick]) == 0
    cfg = SynthConfig(images=3, size=64, classes=3, max_objects=4, object_scale=(0.2, 0.5), clutter=False)
    assert generated_with(tmp_path / "qs" / "annotations.json", cfg)
    err = io.StringIO()
    with contextlib.redirect_stderr(err):
        assert main([*args, "--object-side", "0.6,0.2"]) == 2
        assert main([*args, "--object-side", "big"]) == 2
    assert "--object-side" in err.getvalue() and "0.2,0.5" in err.getvalue()
