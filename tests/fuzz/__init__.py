"""The fuzz harness: corrupted raw releases, prediction files and unified files thrown at
the real commands (``unify build``, ``evalserver score``, ``unify info/leaks/verify``).

- ``values``: the special values a corruption can put into a document (raw tokens, NaN,
  invalid UTF-8, deep nesting, pickle bombs and globals).
- ``codecs``: how each file format is decoded into a document, written back with those
  values, and decoded again by a strict reference parser (which judges byte-level damage).
- ``rules``: which corruptions must be rejected, per raw file, per prediction metric and per
  unified-file damage (the judgement rules, documented in docs/testing.md).
- ``seeds``: small valid inputs written by the project's own writers.
- ``corrupt``: hypothesis strategies that corrupt a seed into a ``Case``.
- ``oracle``: runs a case's command in a forked child (memory limit, timeout) or a
  subprocess and classifies the outcome.
- ``targets``: the fuzz targets (raw files, prediction formats, unified-file commands),
  derived from ``unify.tasks`` and the scorer registry.

The test modules run a bounded, derandomised number of cases per target;
``benchmarks/bench_fuzz.py`` runs thousands.
"""
