"""Alembic's entry point, configured in code by ``evalserver.db.migrate`` (no alembic.ini).

The caller passes an open connection in ``config.attributes["connection"]``; SQLite gets
batch mode, because it cannot ALTER most of a table in place.
"""

from __future__ import annotations

from alembic import context

from evalserver.db.models import Base

config = context.config
connection = config.attributes["connection"]
context.configure(
    connection=connection,
    target_metadata=Base.metadata,
    render_as_batch=connection.dialect.name == "sqlite",
    compare_type=True,
)
with context.begin_transaction():
    context.run_migrations()
