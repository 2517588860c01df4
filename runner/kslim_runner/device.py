"""Which device the job runs on, and whether paddlepaddle-gpu 2.6.2 can run on the GPU it got.

The 2.6.2 GPU wheel carries kernels for sm_61 to sm_86 and no PTX: a GPU runs it when its compute
capability is at least 6.1 and below 9.0 (sm_89, Ada, runs sm_86 code; Hopper, 9.0, does not).
`decide_device` is a pure function of what Paddle reports; `probe` asks Paddle.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass, field
from pathlib import Path

from kslim_api.contract import Reason

from kslim_runner.errors import DeviceError

MIN_CAPABILITY = (6, 1)
FIRST_UNSUPPORTED = (9, 0)
PADDLE_GPU_SPAN = "sm_61-sm_86 (Pascal to Ada: e.g. P4/P40, V100, T4, A100, A10, L4)"


@dataclass(frozen=True)
class GpuInfo:
    index: int
    name: str
    capability: tuple[int, int]


@dataclass(frozen=True)
class DeviceDecision:
    device: str  # "cpu" | "gpu"
    reason: str
    gpus: tuple[GpuInfo, ...] = field(default_factory=tuple)


def capability_supported(cc: tuple[int, int]) -> bool:
    return MIN_CAPABILITY <= tuple(cc) < FIRST_UNSUPPORTED


def _unsupported(gpu: GpuInfo) -> str:
    major, minor = gpu.capability
    return (
        f"GPU {gpu.index} ({gpu.name}, compute capability {major}.{minor}) cannot run "
        "paddlepaddle-gpu 2.6.2, "
        f"which has kernels for {PADDLE_GPU_SPAN} only; run the job on such a GPU (the operator's node "
        f"affinity on nvidia.com/gpu.compute.major) or set spec.benchmark.device to cpu"
    )


def decide_device(requested: str, compiled_with_cuda: bool, gpus: list[GpuInfo]) -> DeviceDecision:
    """cpu: always cpu. gpu: the CUDA build and usable GPUs, else DeviceError. auto: the GPUs when
    there are any (they must be usable: a job given a GPU it cannot use fails fast), else cpu."""
    if requested == "cpu":
        return DeviceDecision("cpu", "spec.benchmark.device is cpu")
    visible = gpus if compiled_with_cuda else []
    if requested == "gpu" and not compiled_with_cuda:
        raise DeviceError(
            "spec.benchmark.device is gpu but this runner has the CPU build of paddle; use the GPU runner "
            "image or set spec.benchmark.device to cpu"
        )
    if requested == "gpu" and not visible:
        raise DeviceError(
            "spec.benchmark.device is gpu but paddle sees no CUDA device; give the pod a GPU "
            "(spec.resources.gpus) or set spec.benchmark.device to cpu",
            reason=Reason.NO_GPU,
        )
    if not visible:
        return DeviceDecision("cpu", "no CUDA device visible")
    bad = [g for g in visible if not capability_supported(g.capability)]
    if bad:
        raise DeviceError(_unsupported(bad[0]))
    names = ", ".join(f"{g.name} (sm_{g.capability[0]}{g.capability[1]})" for g in visible)
    return DeviceDecision("gpu", f"{len(visible)} usable GPU(s): {names}", tuple(visible))


def cpu_threads() -> int:
    """CPU threads this process may use: its affinity, capped by a cgroup CPU quota (a pod's limit)."""
    try:
        n = len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        n = os.cpu_count() or 1
    try:
        quota, period = Path("/sys/fs/cgroup/cpu.max").read_text().split()[:2]
        if quota != "max":
            n = min(n, max(1, math.ceil(int(quota) / int(period))))
    except (OSError, ValueError):
        pass
    return max(1, n)


def use_cpu_threads(n: int | None = None) -> int:
    """Let paddle's CPU kernels use n threads (default: cpu_threads()); returns n."""
    import paddle

    n = n or cpu_threads()
    paddle.base.core.set_num_threads(n)
    return n


def probe() -> tuple[bool, list[GpuInfo]]:
    """(paddle built with CUDA, the GPUs it sees). Never raises: a broken driver means no GPU."""
    import paddle

    if not paddle.device.is_compiled_with_cuda():
        return False, []
    gpus = []
    try:
        for i in range(paddle.device.cuda.device_count()):
            cc = paddle.device.cuda.get_device_capability(i)
            gpus.append(GpuInfo(i, paddle.device.cuda.get_device_name(i), (int(cc[0]), int(cc[1]))))
    except Exception:  # a driver/runtime mismatch shows as no usable device
        return True, gpus
    return True, gpus
