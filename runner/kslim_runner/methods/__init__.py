"""Compression methods (prune, distill, qat, ptq): one module each, each registering a MethodDescriptor with
kslim_runner.pipeline.methods.register_method. Every module here is imported by load_methods().

PaddleSlim is imported here first, with its import-time UserWarning (setuptools replacing
distutils) silenced: it is not about the job and would be the first line a user reads on stderr."""

import warnings

with warnings.catch_warnings():
    warnings.simplefilter("ignore", UserWarning)
    import paddleslim  # noqa: F401
