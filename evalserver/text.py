"""Text from participants (team and method names, descriptions) shown on a terminal.

Names are stored and returned verbatim; where they are rendered they are escaped for that
medium. On a terminal that means control characters: an escape sequence in a team name
could otherwise recolour, move the cursor or rewrite what an operator reads.
"""

from __future__ import annotations

__all__ = ["printable"]


def printable(text: str) -> str:
    """``text`` with each non-printable character (C0/C1 controls, line and paragraph
    separators) shown as its Python escape (``\\x1b``, ``\\n``); the rest as is."""
    if text.isprintable():
        return text
    return "".join(c if c.isprintable() else repr(c)[1:-1] for c in text)
