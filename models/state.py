"""TrainingState: everything needed to continue a run exactly, as bytes without pickle.

The bytes are an `.npz` archive: arrays for the weights and optimizer buffers, plus one JSON
string (`state.json`) for the rest (epoch, RNG state, schedule and early-stopping state, history,
the resolved spec and a fingerprint of the training data). Loaded with `allow_pickle=False`.
The shuffling generator also draws the dropout masks, so its state covers those too.
"""

from __future__ import annotations

import io
import json
import zipfile
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from models.errors import ArtifactError
from models.types import Array

STATE_FORMAT = "descent.training_state/1"


@dataclass
class TrainingState:
    spec: dict[str, Any]  # the resolved TrainingSpec as JSON data
    data_fingerprint: str
    epoch: int  # epochs completed
    theta: Array  # every weight and bias, flat
    optimizer_buffers: dict[str, Array]
    optimizer_meta: dict[str, Any]
    rng_state: dict[str, Any]  # the shuffling Generator's bit_generator.state (plain data)
    schedule_state: dict[str, Any]
    early_stopping_state: dict[str, Any]
    best_theta: Array | None = None
    history: list[dict[str, Any]] = field(default_factory=list)
    # A warm-started run's init_model (its epochs and a checksum of its weights), else None:
    # resuming needs the same one. States saved before warm starts existed have none.
    warm_start: dict[str, Any] | None = None

    def to_bytes(self) -> bytes:
        arrays: dict[str, Array] = {"theta": self.theta}
        arrays.update({f"optimizer.{k}": v for k, v in self.optimizer_buffers.items()})
        if self.best_theta is not None:
            arrays["best_theta"] = self.best_theta
        meta = {
            "format": STATE_FORMAT,
            "spec": self.spec,
            "data_fingerprint": self.data_fingerprint,
            "epoch": self.epoch,
            "optimizer_meta": self.optimizer_meta,
            # PCG64 state holds 128-bit integers: JSON keeps them exact, floats would not.
            "rng_state": self.rng_state,
            "schedule_state": self.schedule_state,
            "early_stopping_state": self.early_stopping_state,
            "history": self.history,
            "warm_start": self.warm_start,
        }
        buf = io.BytesIO()
        arrays["state.json"] = np.array(json.dumps(meta))
        np.savez(buf, **arrays)  # type: ignore[arg-type]  # numpy stubs mistype **kwds
        return buf.getvalue()

    @classmethod
    def from_bytes(cls, data: bytes) -> TrainingState:
        arrays = load_npz(data, what="training state")
        try:
            meta = json.loads(str(arrays.pop("state.json")))
            if meta.get("format") != STATE_FORMAT:
                raise ArtifactError(f"not a training state (format {meta.get('format')!r})")
            theta = arrays.pop("theta")
            best = arrays.pop("best_theta", None)
            buffers = {k.removeprefix("optimizer."): v for k, v in arrays.items()}
            if any(v.shape != theta.shape for v in buffers.values()) or (
                best is not None and best.shape != theta.shape
            ):
                raise ArtifactError("training state arrays do not match the weight vector")
            return cls(
                spec=meta["spec"],
                data_fingerprint=meta["data_fingerprint"],
                epoch=int(meta["epoch"]),
                theta=theta,
                optimizer_buffers=buffers,
                optimizer_meta=meta["optimizer_meta"],
                rng_state=meta["rng_state"],
                schedule_state=meta["schedule_state"],
                early_stopping_state=meta["early_stopping_state"],
                best_theta=best,
                history=meta["history"],
                warm_start=meta.get("warm_start"),
            )
        except (KeyError, TypeError, ValueError) as exc:
            if isinstance(exc, ArtifactError):
                raise
            raise ArtifactError(f"training state is incomplete: {exc}") from None


def load_npz(data: bytes, *, what: str) -> dict[str, Array]:
    """Every array of an `.npz` held in memory; never unpickles; numeric and unicode only."""
    try:
        with np.load(io.BytesIO(data), allow_pickle=False) as archive:
            arrays = {name: archive[name] for name in archive.files}
    except (OSError, ValueError, zipfile.BadZipFile, EOFError) as exc:
        raise ArtifactError(f"{what} is not a valid .npz archive without pickles: {exc}") from None
    for name, arr in arrays.items():
        if arr.dtype.kind not in "biufU":
            raise ArtifactError(f"{what}: array {name!r} has unsupported dtype {arr.dtype}")
    return arrays
