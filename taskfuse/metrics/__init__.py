"""Metrics: fusion quality (MATLAB-reference EN, MI, SD, SF, AG, SCD, VIF, Qabf, SSIM, ...) and task metrics."""

from taskfuse.metrics import functional  # noqa: F401
from taskfuse.metrics.detection import DetectionMetrics  # noqa: F401
from taskfuse.metrics.fusion import DEFAULT_METRICS, HIGHER_IS_BETTER, METRICS, FusionMetrics  # noqa: F401
from taskfuse.metrics.keypoints import KeypointMetrics  # noqa: F401
from taskfuse.metrics.report import write_report  # noqa: F401
from taskfuse.metrics.segmentation import MFNET_7_CLASSES, SegmentationMetrics  # noqa: F401
