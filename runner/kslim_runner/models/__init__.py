"""Built-in detectors (from Paddle's own layers and ops), their registry and the export wrapper."""

from kslim_runner.models.base import Detector, DetectorConfig
from kslim_runner.models.registry import architectures, build_detector

__all__ = ["Detector", "DetectorConfig", "architectures", "build_detector"]
