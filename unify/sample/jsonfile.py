"""Atomic JSON output shared by the format writers."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import Any

import orjson


def dump_json(path: Path, obj: Any) -> Path:
    """Write compact JSON (as the releases are) via a temp file and rename."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)
        with os.fdopen(fd, "wb") as f:
            f.write(orjson.dumps(obj))
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path
