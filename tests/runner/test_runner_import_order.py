"""paddle 2.6.2 imported before zlib's first use makes every later zlib call segfault; the runner
package initialises zlib on import. These run in fresh interpreters, where a crash is visible."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ZLIB_WORK = "import zlib; assert zlib.decompress(zlib.compress(b'k' * 100000)) == b'k' * 100000"


def _python(code: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300, env=env)


@pytest.mark.parametrize(
    "entry",
    ["import kslim_runner", "import kslim_runner.cli", "from kslim_runner.run import run_command"],
)
def test_runner_entry_points_initialise_zlib_before_paddle(entry: str) -> None:
    done = _python(
        f"{entry}\nimport paddle\n{ZLIB_WORK}\nimport gzip; gzip.compress(b'x' * 1000)\nprint('ok')"
    )
    assert done.returncode == 0, f"zlib after paddle crashed (rc {done.returncode}): {done.stderr[-2000:]}"
    assert done.stdout.strip().endswith("ok")


def test_paddle_modules_of_the_runner_keep_the_order() -> None:
    """Importing a deep module (which imports paddle) still runs the package __init__ first."""
    done = _python(
        f"import kslim_runner.models.yolov3\nimport kslim_runner.measure.coco_eval\n{ZLIB_WORK}\nprint('ok')"
    )
    assert done.returncode == 0, done.stderr[-2000:]


def test_the_hazard_is_real_without_the_package() -> None:
    """The canary: paddle first, then zlib, crashes. If a paddle release fixes it, this says so."""
    done = _python(f"import paddle\n{ZLIB_WORK}")
    if done.returncode == 0:
        pytest.skip("this paddle build no longer breaks zlib; the ordering guard is harmless but unneeded")
    assert done.returncode != 0


def test_openmp_threads_do_not_spin_unless_the_user_says_so() -> None:
    env = {k: v for k, v in os.environ.items() if k != "KMP_BLOCKTIME"}
    code = "import kslim_runner, os; print(os.environ['KMP_BLOCKTIME'])"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=120)
    assert done.stdout.strip() == "0"
    env["KMP_BLOCKTIME"] = "50"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=120)
    assert done.stdout.strip() == "50"


MKL_PATH = "import os, kslim_runner; print(repr(os.environ.get('MKL_DEBUG_CPU_TYPE')))"


def test_mkl_takes_its_avx2_path_on_amd_cpus_only_and_an_explicit_setting_wins() -> None:
    import kslim_runner

    env = {k: v for k, v in os.environ.items() if k != "MKL_DEBUG_CPU_TYPE"}
    done = _python(MKL_PATH, env)
    assert done.stdout.strip() == ("'5'" if kslim_runner.amd_cpu() else "None"), done.stderr[-2000:]
    for value in ("", "2"):  # an operator's own choice (empty: MKL's default path) is kept
        assert _python(MKL_PATH, {**env, "MKL_DEBUG_CPU_TYPE": value}).stdout.strip() == repr(value)


@pytest.mark.parametrize(
    ("vendor", "amd"), [("AuthenticAMD", True), ("HygonGenuine", True), ("GenuineIntel", False)]
)
def test_cpu_vendor_is_read_from_cpuinfo(tmp_path: Path, vendor: str, amd: bool) -> None:
    import kslim_runner

    cpuinfo = tmp_path / "cpuinfo"
    cpuinfo.write_text(f"processor\t: 0\nvendor_id\t: {vendor}\ncpu family\t: 25\n")
    assert kslim_runner.amd_cpu(str(cpuinfo)) is amd
    assert kslim_runner.amd_cpu(str(tmp_path / "missing")) is False
