"""End-to-end benchmarks: ``synthetic`` trains every learned method fusion-only and task-guided on labelled
synthetic scenes and judges them by downstream accuracy (docs/benchmark.md).

>>> from pathlib import Path
>>> from taskfuse.benchmark.scales import SMALL
>>> from taskfuse.benchmark.synthetic import all_rows, run
>>> from taskfuse.benchmark.report import write_report
>>> len(all_rows(SMALL)) > 10                   # the modalities, the classical rules, every method twice
True
>>> run(SMALL, Path("bench"), all_rows(SMALL), device="cpu")  # doctest: +SKIP
>>> write_report(Path("bench"))                 # doctest: +SKIP

The last two lines (minutes on a CPU, left out of the doctests; the slow tests run them through
``taskfuse benchmark synthetic``) write ``bench/table.md``, ``table.json`` and ``table.csv``.
"""
