"""kslim's runner: what a CompressionJob pod executes (and `kslim run` locally).

Two process-wide settings must happen before paddle is imported, so they live here:

- zlib must be used once first: with paddle 2.6.2 imported first, every later zlib call segfaults in
  inflateReset2. tests/runner/test_runner_import_order.py fails if the order breaks.
- KMP_BLOCKTIME=0 (unless set): paddle's CPU math runs on Intel OpenMP, whose threads spin for
  200 ms after every parallel region; on a shared or oversubscribed CPU that made training two to
  three times slower here. Without spinning, idle threads yield the core at once.
"""

import os as _os
import zlib as _zlib

_zlib.decompress(_zlib.compress(b"kslim"))  # initialise zlib before anything can import paddle
_os.environ.setdefault("KMP_BLOCKTIME", "0")
