"""The FastAPI application: thin routers over the database and the scorers."""
