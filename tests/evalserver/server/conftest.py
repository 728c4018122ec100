"""Fixtures shared by the server tests."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.evalserver.server.live import Live, Services, make_live


@pytest.fixture
def live(tmp_path: Path, tiny_h5: Path) -> Iterator[Live]:
    """A fresh embedded server's state (SQLite, kombu's SQLAlchemy transport) with the
    tiny sample loaded as benchmark ``tiny``; closed after the test."""
    server = make_live("sqlite", Services(), tmp_path / "data")
    server.load_benchmark(tiny_h5)
    try:
        yield server
    finally:
        server.close()
