"""The seeds' downstream protocol: train the same task network on each input (IR only, VIS only, each fused set)
from the same seed, score it on the test split, tabulate (docs/evaluation.md).

>>> from taskfuse.evaluation import ProtocolConfig, SegmentationTask, evaluate, parse_inputs
>>> task = SegmentationTask(train.classes, model="segformer-b2")
>>> results = evaluate(task, train, test, parse_inputs(["ir", "vi", "ours=fused/"]), Path("eval"), ProtocolConfig())
"""

from taskfuse.evaluation import detection, keypoints, segmentation  # noqa: F401  (each task registers itself)
from taskfuse.evaluation.base import DOWNSTREAM, DownstreamTask
from taskfuse.evaluation.inputs import InputSource, InputSpec, parse_input, parse_inputs
from taskfuse.evaluation.loop import ProtocolConfig, channel_stats, evaluate
from taskfuse.evaluation.segmentation import SegmentationTask, direct_segmentation

__all__ = [
    "DOWNSTREAM",
    "DownstreamTask",
    "InputSource",
    "InputSpec",
    "ProtocolConfig",
    "SegmentationTask",
    "channel_stats",
    "direct_segmentation",
    "evaluate",
    "parse_input",
    "parse_inputs",
]
