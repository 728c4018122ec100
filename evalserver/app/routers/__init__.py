"""The /api/v1 routes, one module per resource; each is thin over the domain modules
(``evalserver.submissions``, ``ranking``, ``benchmarks``)."""
