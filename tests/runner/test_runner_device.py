"""The device decision: paddlepaddle-gpu 2.6.2 runs sm_61 up to Ada (sm_89), not Hopper; exit 4."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from kslim_api.contract import EXIT_DEVICE
from kslim_runner.device import GpuInfo, capability_supported, decide_device
from kslim_runner.errors import DeviceError
from kslim_runner.run import run_command


def gpu(cc: tuple[int, int], name: str = "GPU") -> GpuInfo:
    return GpuInfo(0, name, cc)


@pytest.mark.parametrize(
    ("cc", "ok"),
    [
        ((6, 0), False),
        ((6, 1), True),
        ((7, 0), True),
        ((7, 5), True),
        ((8, 0), True),
        ((8, 6), True),
        ((8, 9), True),
        ((9, 0), False),
        ((10, 0), False),
        ((5, 2), False),
    ],
)
def test_supported_capabilities(cc: tuple[int, int], ok: bool) -> None:
    assert capability_supported(cc) is ok


def test_cpu_is_always_cpu() -> None:
    assert decide_device("cpu", True, [gpu((9, 0))]).device == "cpu"


def test_gpu_on_a_t4_is_gpu() -> None:
    d = decide_device("gpu", True, [gpu((7, 5), "Tesla T4")])
    assert d.device == "gpu" and "Tesla T4" in d.reason


def test_gpu_on_an_h100_fails_with_the_reason() -> None:
    with pytest.raises(DeviceError) as e:
        decide_device("gpu", True, [gpu((9, 0), "NVIDIA H100 80GB HBM3")])
    msg = e.value.summary
    assert "H100" in msg and "9.0" in msg and "sm_61" in msg and "device to cpu" in msg
    assert e.value.exit_code == EXIT_DEVICE


def test_gpu_with_the_cpu_build_or_no_device_fails() -> None:
    with pytest.raises(DeviceError, match="CPU build"):
        decide_device("gpu", False, [])
    with pytest.raises(DeviceError, match="no CUDA device"):
        decide_device("gpu", True, [])


def test_auto_uses_cpu_without_gpus_and_fails_on_an_unusable_one() -> None:
    assert decide_device("auto", False, []).device == "cpu"
    assert decide_device("auto", True, []).device == "cpu"
    assert decide_device("auto", True, [gpu((8, 0))]).device == "gpu"
    with pytest.raises(DeviceError):
        decide_device("auto", True, [gpu((9, 0))])


def test_run_asks_for_a_gpu_on_this_cpu_machine_exits_4(
    make_job, tmp_path: Path, monkeypatch, capsys
) -> None:
    import paddle

    if paddle.device.is_compiled_with_cuda():
        pytest.skip("this paddle has CUDA")
    term = tmp_path / "termination-log"
    monkeypatch.setenv("KSLIM_TERMINATION_MESSAGE_PATH", str(term))
    job = make_job(benchmark={"device": "gpu", "iterations": 5, "warmup": 1}, resources={"gpus": 1})
    assert run_command(str(job), output=str(tmp_path / "out")) == EXIT_DEVICE
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "CPU build" in err[0]
    msg = json.loads(term.read_text())
    assert msg["outcome"] == "Failed" and msg["reason"] == "DeviceUnsupported"
    assert not (tmp_path / "out" / "stages").exists()  # failed before any work
