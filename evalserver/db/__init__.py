"""The database: ORM models (the row of a submission is the truth) and sessions."""
