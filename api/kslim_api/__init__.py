"""kslim's API: the CompressionJob schema (pydantic), shared by the operator, the runner and the CLI.

No Paddle import anywhere in this package.
"""

from kslim_api.compressionjob import CompressionJob, CompressionJobSpec
from kslim_api.contract import ConditionType, Phase, Stage
from kslim_api.status import CompressionJobStatus, Condition
from kslim_api.summary import strategy_summary
from kslim_api.v1alpha1 import API_VERSION, KIND, StrategyStep
from kslim_api.validate import InvalidJobError, load_job

__all__ = [
    "API_VERSION",
    "KIND",
    "CompressionJob",
    "CompressionJobSpec",
    "CompressionJobStatus",
    "Condition",
    "ConditionType",
    "InvalidJobError",
    "Phase",
    "Stage",
    "StrategyStep",
    "load_job",
    "strategy_summary",
]
