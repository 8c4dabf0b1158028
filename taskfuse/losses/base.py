"""What every loss returns, so the training loop can log each term by name."""

from __future__ import annotations

from dataclasses import dataclass, field

from torch import Tensor


@dataclass
class LossTerms:
    """``total`` is what gets back-propagated; ``parts`` holds each weighted term (detached for logging)."""

    total: Tensor
    parts: dict[str, Tensor] = field(default_factory=dict)

    def log_dict(self) -> dict[str, float]:
        return {"total": float(self.total.detach()), **{k: float(v.detach()) for k, v in self.parts.items()}}
