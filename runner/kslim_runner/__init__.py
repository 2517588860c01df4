"""kslim's runner: what a CompressionJob pod executes (and `kslim run` locally).

zlib must be used once before paddle is imported: with paddle 2.6.2 imported first, every later
zlib call segfaults in inflateReset2. Importing this package first makes the order right;
tests/runner/test_import_order.py fails if it breaks.
"""

import zlib as _zlib

_zlib.decompress(_zlib.compress(b"kslim"))  # initialise zlib before anything can import paddle
