"""An epoch's mini-batches in the layout the network trains in, and its train accuracy.

The network is feature-major (models.network): targets are kept as (K, n), and each batch hands
the loss an (m, K) view of them laid out as the logits are. With shuffling, a small training set
is copied whole in the epoch's order (one call per epoch); a large one is gathered a batch at a
time into small buffers, still in cache when the GEMM reads them (copying 80 MB of features in
a random order costs more than the epoch's GEMMs gain from it). Both give the same rows in the
same order, so the same numbers.

Train accuracy keeps each batch's logits (a copy costs less than an argmax on a small batch) and
compares their classes with the labels once per epoch; with too many logits to keep, per batch.
"""

from __future__ import annotations

import numpy as np

from models.evaluation import store_predictions
from models.types import Array

# Above this many bytes of training features, batches are gathered one at a time.
GATHER_BYTES = 4 << 20
# Up to this many bytes of an epoch's logits are kept for its train accuracy.
EPOCH_LOGITS_BYTES = 64 << 20


class EpochBatches:
    def __init__(self, x: Array, t: Array, w: Array | None, *, shuffle: bool) -> None:
        """x (n, d + 1) features with a ones column, t (n, K) targets, w (n, 1) weights."""
        self.n = x.shape[0]
        self._x, self._t, self._w = x, np.ascontiguousarray(t.T), w
        self._gather = shuffle and x.nbytes > GATHER_BYTES
        self._copy = shuffle and not self._gather
        self._x_epoch = np.empty_like(self._x) if self._copy else self._x
        self._t_epoch = np.empty_like(self._t) if self._copy else self._t
        self._w_epoch = np.empty_like(w) if shuffle and w is not None else w
        self._order: Array | None = None
        self._buffers: dict[int, tuple[Array, Array]] = {}

    def start(self, order: Array | None) -> None:
        """A new epoch: rows in `order` (a permutation), or as stored when None."""
        self._order = order
        if order is None:
            return
        if self._copy:
            np.take(self._x, order, axis=0, out=self._x_epoch)
            np.take(self._t, order, axis=1, out=self._t_epoch)
        if self._w is not None and self._w_epoch is not None:
            np.take(self._w, order, axis=0, out=self._w_epoch)

    def batch(self, i: int, m: int) -> tuple[Array, Array, Array | None]:
        """Rows i .. i + m of the epoch: features (m, d + 1), targets (m, K), weights."""
        w = None if self._w_epoch is None else self._w_epoch[i : i + m]
        if not self._gather or self._order is None:
            return self._x_epoch[i : i + m], self._t_epoch[:, i : i + m].T, w
        bufs = self._buffers.get(m)
        if bufs is None:
            bufs = self._buffers[m] = (
                np.empty((m, self._x.shape[1]), self._x.dtype),
                np.empty((self._t.shape[0], m), self._t.dtype),
            )
        rows = self._order[i : i + m]
        xb = np.take(self._x, rows, axis=0, out=bufs[0])
        tb = np.take(self._t, rows, axis=1, out=bufs[1])
        return xb, tb.T, w


class TrainAccuracy:
    def __init__(self, labels: Array, n_outputs: int, dtype: np.dtype[np.floating]) -> None:
        n = labels.shape[0]
        self._labels = labels
        self._predictions = np.empty(n, dtype=np.int64)
        keep = n_outputs * n * dtype.itemsize <= EPOCH_LOGITS_BYTES
        self._logits = np.empty((n_outputs, n), dtype=dtype) if keep else None

    def record(self, i: int, logits_fm: Array) -> None:
        """Batch rows i .. i + m of the epoch: their feature-major logits (K, m)."""
        m = logits_fm.shape[1]
        if self._logits is not None:
            np.copyto(self._logits[:, i : i + m], logits_fm)
        else:
            store_predictions(logits_fm, self._predictions[i : i + m])

    def result(self, order: Array | None) -> float:
        """The epoch's accuracy; `order` as given to EpochBatches.start."""
        if self._logits is not None:
            store_predictions(self._logits, self._predictions)
        labels = self._labels if order is None else self._labels[order]
        return int(np.count_nonzero(self._predictions == labels)) / int(labels.shape[0])
