"""End-to-end benchmarks: ``synthetic`` trains every learned method fusion-only and task-guided on labelled
synthetic scenes and judges them by downstream accuracy (docs/benchmark.md).

>>> from taskfuse.benchmark.scales import SMALL
>>> from taskfuse.benchmark.synthetic import all_rows, run
>>> from taskfuse.benchmark.report import write_report
>>> run(SMALL, Path("bench"), all_rows(SMALL), device="cpu")
>>> write_report(Path("bench"))                  # bench/table.md, table.json, table.csv
"""
