"""Runs: service (submit/get/list/cancel), validation (specs), lease (fenced attempts),
training (the worker side, the only importer of the trainer), reconcile (reaper and re-send).

This package's namespace holds what the API uses; the worker imports ``core.runs.training``.
"""

from core.runs.reconcile import reap_stale_runs, reconcile, resend_queued
from core.runs.service import cancel_run, get_history, get_run, list_runs, submit_run
from core.runs.validation import SpecCheck, check_spec, validate_run

__all__ = [
    "SpecCheck",
    "cancel_run",
    "check_spec",
    "get_history",
    "get_run",
    "list_runs",
    "reap_stale_runs",
    "reconcile",
    "resend_queued",
    "submit_run",
    "validate_run",
]
