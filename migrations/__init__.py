"""Alembic migrations of the evaluation server's database.

A package (not a loose folder next to an ``alembic.ini``) so that it ships in the wheel and
``evalserver.db.migrate`` finds it from an installed copy as well as from a checkout.
"""
