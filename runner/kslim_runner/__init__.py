"""kslim's runner: what a CompressionJob pod executes (and `kslim run` locally).

Three process-wide settings must happen before paddle is imported, so they live here:

- zlib must be used once first: with paddle 2.6.2 imported first, every later zlib call segfaults in
  inflateReset2. tests/runner/test_runner_import_order.py fails if the order breaks.
- KMP_BLOCKTIME=0 (unless set): paddle's CPU math runs on Intel OpenMP, whose threads spin for
  200 ms after every parallel region; on a shared or oversubscribed CPU that made training two to
  three times slower here. Without spinning, idle threads yield the core at once.
- MKL_DEBUG_CPU_TYPE=5 on AMD CPUs (unless set): paddle's bundled MKL (2019.0.5) picks a slow
  generic SGEMM path on any non-Intel CPU; this makes it take the AVX2 one. A training convolution
  (im2col + SGEMM) ran 2.8x faster and a whole training step 2.1x on an AMD EPYC
  (bench/mkl_path.py). Not on Intel, where MKL already picks its best (AVX-512) path. Empty keeps
  MKL's default.
- Third-party noise defaults (tqdm off without a terminal, glog INFO off): see `quiet`.
"""

import os as _os
import zlib as _zlib

_zlib.decompress(_zlib.compress(b"kslim"))  # initialise zlib before anything can import paddle
_os.environ.setdefault("KMP_BLOCKTIME", "0")

from kslim_runner import quiet as _quiet  # noqa: E402  (stdlib only; must run before paddle/tqdm load)

_quiet.install_env()
_quiet.install_warnings()


def amd_cpu(cpuinfo_path: str = "/proc/cpuinfo") -> bool:
    """An AMD (or Hygon, AMD-licensed) x86 CPU, by the first vendor_id line of cpuinfo."""
    try:
        with open(cpuinfo_path, encoding="ascii", errors="replace") as cpuinfo:
            for line in cpuinfo:
                if line.startswith("vendor_id"):
                    return "AuthenticAMD" in line or "HygonGenuine" in line
    except OSError:
        pass
    return False


if amd_cpu():
    _os.environ.setdefault("MKL_DEBUG_CPU_TYPE", "5")
