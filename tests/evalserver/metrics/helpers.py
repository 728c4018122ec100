"""Small file writers shared by the tests."""

from __future__ import annotations

import gzip
import json
from pathlib import Path
from typing import Any


def write_json(path: Path, value: Any, *, gz: bool = False) -> Path:
    """Write ``value`` as JSON (gzip-compressed when ``gz``) and return the path."""
    data = json.dumps(value).encode()
    path.write_bytes(gzip.compress(data) if gz else data)
    return path


def write_text(path: Path, text: str, *, gz: bool = False) -> Path:
    data = text.encode()
    path.write_bytes(gzip.compress(data) if gz else data)
    return path
