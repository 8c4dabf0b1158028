"""The fixed Sobel kernels' device cache (``taskfuse.nn.sobel``) under tracing."""

from __future__ import annotations

import torch
from torch import Tensor, nn

from taskfuse.nn import sobel


class _Edges(nn.Module):
    def forward(self, x: Tensor) -> Tensor:
        return sobel.sobel_abs(x)


def test_a_trace_leaves_no_traced_kernels_behind(monkeypatch) -> None:
    """``torch.export`` runs the function on fake tensors; had it cached its kernels, every later eager call
    (the export's own check against onnxruntime in a fresh process) would fail on them."""
    monkeypatch.setattr(sobel, "_KERNELS", {})
    x = torch.rand(2, 1, 12, 16)
    program = torch.export.export(_Edges(), (x,))
    assert sobel._KERNELS == {}
    assert torch.equal(_Edges()(x), program.module()(x))
    assert len(sobel._KERNELS) == 1 and all(type(k) is Tensor for k in next(iter(sobel._KERNELS.values())))


def test_a_compiled_graph_takes_no_kernel_from_the_cpu() -> None:
    """A CPU tensor entering a compiled graph is copied to the GPU on every call, a copy that waits for it: the
    kernels are made inside the graph instead."""
    inputs: list[list[tuple[int, ...]]] = []

    def backend(graph: torch.fx.GraphModule, example: list) -> object:
        inputs.append([tuple(t.shape) for t in example if isinstance(t, Tensor)])
        return graph.forward

    x = torch.rand(2, 3, 8, 8)
    compiled = torch.compile(sobel.sobel_abs, backend=backend, fullgraph=True)
    assert torch.equal(compiled(x), sobel.sobel_abs(x))
    assert inputs == [[(2, 3, 8, 8)]]
