"""Comparison tables in the seeds' layout: one row per method, best value in bold, second best underscored.

Seeds 001–004 mark the best result of each column in bold and the second best underlined; Markdown has no
underline, so the second best is written ``_x_`` (shown in italics).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence


def rank_marks(values: Mapping[str, float], higher_is_better: bool = True) -> tuple[list[str], list[str]]:
    """Methods holding the best and the second-best value of one column.

    Equal values share a rank (two methods tied for best are both best, and the next value is second). NaN
    never ranks. With fewer than two methods nothing is marked: there is nothing to compare.
    """
    finite = {m: v for m, v in values.items() if v is not None and not math.isnan(v)}
    if len(values) < 2 or not finite:
        return [], []
    distinct = sorted(set(finite.values()), reverse=higher_is_better)
    best = [m for m, v in finite.items() if v == distinct[0]]
    second = [m for m, v in finite.items() if len(distinct) > 1 and v == distinct[1]]
    return best, second


def mark(text: str, method: str, best: Sequence[str], second: Sequence[str]) -> str:
    """``text`` in bold when ``method`` is best, ``_text_`` when second best, else unchanged."""
    if method in best:
        return f"**{text}**"
    if method in second:
        return f"_{text}_"
    return text


def markdown_table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    """A GitHub-flavoured Markdown table: the first column left-aligned, the others right-aligned."""
    align = [":--"] + ["--:"] * (len(header) - 1)
    lines = [header, align, *rows]
    return "\n".join("| " + " | ".join(str(c) for c in line) + " |" for line in lines) + "\n"


def json_number(x: float) -> float | None:
    """``x`` for JSON: NaN (not valid JSON) becomes ``None``."""
    return None if x is None or math.isnan(x) else float(x)


def percent_table(values: Mapping[str, Mapping[str, float | None]], columns: Sequence[str], digits: int) -> str:
    """Markdown table of fractions shown as percentages: ``values[method][column]`` (None or NaN: ``-``), one
    row per method, best and second best of every column marked (higher is better)."""
    cells = {m: {c: math.nan if r.get(c) is None else 100.0 * float(r[c]) for c in columns} for m, r in values.items()}
    marks = {c: rank_marks({m: cells[m][c] for m in cells}) for c in columns}
    rows = [
        [m] + [mark("-" if math.isnan(cells[m][c]) else f"{cells[m][c]:.{digits}f}", m, *marks[c]) for c in columns]
        for m in cells
    ]
    return markdown_table(["Method", *columns], rows)
