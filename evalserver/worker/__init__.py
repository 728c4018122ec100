"""Celery workers that score submissions, and the sweeper that re-queues stuck ones."""
