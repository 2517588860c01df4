"""bench/gpu_inference.py: the GPU rows' script stops with exit 2 and the reason where it cannot
run (as on these CPU machines), and times the rows whose models a compression run exported."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType

import pytest
from kslim_runner.device import GpuInfo
from kslim_runner.errors import DeviceError

SCRIPT = Path(__file__).resolve().parents[2] / "bench" / "gpu_inference.py"


def _script() -> ModuleType:
    if str(SCRIPT.parent) not in sys.path:  # as when run as a script: its sibling bench/inference.py
        sys.path.insert(0, str(SCRIPT.parent))
    spec = importlib.util.spec_from_file_location("gpu_inference", SCRIPT)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_without_a_usable_gpu_it_exits_2_with_the_reason(capsys: pytest.CaptureFixture[str]) -> None:
    import paddle

    if paddle.device.is_compiled_with_cuda():
        pytest.skip("the GPU build of paddle: this checks the CPU build's refusal")
    assert _script().main(["--work", "/nonexistent"]) == 2
    assert "cannot run here: this paddle is the CPU build" in capsys.readouterr().err


def test_a_gpu_paddle_cannot_run_is_refused_by_name(monkeypatch: pytest.MonkeyPatch) -> None:
    # No Hopper GPU here: the probe's answer on one is stood in for.
    monkeypatch.setattr("kslim_runner.device.probe", lambda: (True, [GpuInfo(0, "NVIDIA H100", (9, 0))]))
    with pytest.raises(DeviceError, match=r"H100, compute capability 9\.0"):
        _script().usable_gpu()


def test_rows_are_the_baseline_in_three_modes_and_each_exported_int8_model(tmp_path: Path) -> None:
    script = _script()
    with pytest.raises(FileNotFoundError, match=r"run bench/compression\.py first"):
        script.variants(tmp_path, 0)
    for rel in (script.BASELINE_MODEL, script.INT8_ROWS["ptq"]):
        (tmp_path / rel).mkdir(parents=True)
        (tmp_path / rel / "model.pdmodel").write_bytes(b"")
    rows = script.variants(tmp_path, 1)
    assert [label for label, _, _ in rows] == [
        "baseline, GPU (no TensorRT)",
        "baseline, TensorRT fp32",
        "baseline, TensorRT fp16",
        "ptq, TensorRT int8",
    ]
    assert all(opts.device == "gpu" and opts.gpu_id == 1 for _, _, opts in rows)
    assert [(opts.tensorrt, opts.precision) for _, _, opts in rows] == [
        (False, "fp32"),
        (True, "fp32"),
        (True, "fp16"),
        (True, "int8"),
    ]
