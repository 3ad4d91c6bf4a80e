"""Hyperparameter sweeps: space (expansion, pure), service (submit/get/list/cancel, for the
API), slots (trials waiting for a worker), asha (early termination, decided by the worker).

The trials are ordinary runs (``runs.sweep_id``), trained by the same workers.
"""

from core.sweeps.service import (
    Leaderboard,
    Trial,
    cancel_sweep,
    get_sweep,
    list_sweeps,
    submit_sweep,
    sweep_view,
)

__all__ = [
    "Leaderboard",
    "Trial",
    "cancel_sweep",
    "get_sweep",
    "list_sweeps",
    "submit_sweep",
    "sweep_view",
]
