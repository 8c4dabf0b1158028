"""What every loss returns, so the training loop can log each term by name; how much of the gradient each carries."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import torch
from torch import Tensor


@dataclass
class LossTerms:
    """``total`` is what gets back-propagated; ``parts`` holds each weighted term (detached for logging)."""

    total: Tensor
    parts: dict[str, Tensor] = field(default_factory=dict)

    def log_dict(self) -> dict[str, float]:
        return {"total": float(self.total.detach()), **{k: float(v.detach()) for k, v in self.parts.items()}}

    @classmethod
    def of(cls, terms: Mapping[str, Tensor]) -> LossTerms:
        """The sum of ``terms`` (weighted, attached to the graph) with each of them detached for logging."""
        return cls(torch.stack(list(terms.values())).sum(), {k: v.detach() for k, v in terms.items()})


def gradient_shares(terms: Mapping[str, Tensor], wrt: Sequence[Tensor]) -> dict[str, float]:
    """Each term's share of the gradient: ``||∂t_k/∂wrt|| / Σ_j ||∂t_j/∂wrt||`` (L2 norms over all of ``wrt``).

    ``terms`` are weighted loss terms still attached to the graph; ``wrt`` the tensors the gradient is taken
    with respect to: a network's parameters (what the optimiser sees) or its output. A term with no path to
    ``wrt`` has share 0. The shares sum to 1 (all 0 when no term has a gradient).

    >>> x = torch.tensor([1.0, 2.0], requires_grad=True)
    >>> {k: round(v, 3) for k, v in gradient_shares({"a": 3 * x.sum(), "b": x.sum()}, [x]).items()}
    {'a': 0.75, 'b': 0.25}
    """
    norms = {}
    for name, term in terms.items():
        grads = torch.autograd.grad(term, list(wrt), retain_graph=True, allow_unused=True) if term.requires_grad else ()
        norms[name] = float(sum((g.double() ** 2).sum() for g in grads if g is not None) ** 0.5)
    total = sum(norms.values())
    return {k: v / total if total > 0 else 0.0 for k, v in norms.items()}
