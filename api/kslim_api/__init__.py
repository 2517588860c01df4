"""kslim's API: the CompressionJob schema (pydantic), shared by the operator, the runner and the CLI."""

from kslim_api.v1alpha1 import API_VERSION, KIND, CompressionJob, CompressionJobSpec

__all__ = ["API_VERSION", "KIND", "CompressionJob", "CompressionJobSpec"]
