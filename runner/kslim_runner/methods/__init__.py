"""Compression methods (prune, distill, qat, ptq): one module each, registered with
kslim_runner.pipeline.methods.register_method. Every module here is imported by load_methods()."""
