"""One module per schema revision, applied in order by ``evalserver db upgrade``."""
