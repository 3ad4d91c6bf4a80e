"""What a Descent user imports and runs: the Python client (``from descent import Client``)
and the ``descent`` command (``descent.cli``)."""

from descent.client import Client, Dataset, Model, Run, Sweep
from descent.errors import DescentError, RunFailed, SweepFailed

__all__ = ["Client", "Dataset", "DescentError", "Model", "Run", "RunFailed", "Sweep", "SweepFailed"]
