"""Celery worker: thin tasks over core.runs."""
