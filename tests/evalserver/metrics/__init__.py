"""Tests of evalserver.metrics (a package, so its module names cannot clash with
same-named test files elsewhere, e.g. tests/unify/converters/test_gqa.py)."""
