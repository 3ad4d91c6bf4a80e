"""Data preparation for training: the split, preprocessing fitted on the training split, label
encoding and target scaling, turned into the arrays the network trains on (`PreparedData`):
targets smoothed when the spec asks for label smoothing, per-sample class weights.

A warm start (`parent`) reuses the parent model's fitted preprocessing instead (models.warm_start).
"""

from __future__ import annotations

import zlib
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from models import warm_start
from models.errors import DataError
from models.losses import smooth_targets
from models.preprocess import Preprocessor, as_rows, frame_columns, infer_feature_types
from models.resolve import class_weights, resolve_spec
from models.spec import TrainingSpec
from models.split import infer_task, split_indices
from models.targets import LabelEncoder, TargetScaler
from models.types import Array
from models.vocabulary import FeatureType, Task

if TYPE_CHECKING:
    from models.model import Model


@dataclass
class PreparedData:
    """Training and validation arrays, ready for the network."""

    task: Task
    x_train: Array  # (n, n_inputs + 1): standardized features plus a column of ones
    t_train: Array  # loss targets: one-hot (n, K), 0/1 (n, 1) or standardized values (n, k)
    labels_train: Array | None  # class indices, for accuracy
    x_val: Array  # (m, n_inputs)
    t_val: Array
    labels_val: Array | None
    y_val: Array | None  # regression targets in original units, for mae / rmse / r2
    preprocessor: Preprocessor
    label_encoder: LabelEncoder | None
    target_scaler: TargetScaler | None
    w_train: Array | None = None  # (n, 1) per-sample class weights, None without them

    def fingerprint(self) -> str:
        crc = zlib.crc32(np.ascontiguousarray(self.x_train).data)
        crc = zlib.crc32(np.ascontiguousarray(self.t_train).data, crc)
        return f"{self.x_train.shape[0]}x{self.x_train.shape[1]}:{crc:08x}"


def prepare_data(
    X: Any,
    y: Any,
    spec: TrainingSpec,
    *,
    feature_names: list[str] | None,
    feature_types: list[FeatureType] | None,
    split_rng: np.random.Generator,
    parent: Model | None = None,
) -> tuple[PreparedData, TrainingSpec]:
    frame = frame_columns(X)
    if frame is not None:  # a DataFrame brings its own names and types
        feature_names = feature_names or frame[0]
        feature_types = feature_types or frame[1]
    rows = as_rows(X, DataError)
    y_arr = np.asarray(y)
    if rows.shape[0] == 0 or rows.shape[1] == 0:
        raise DataError(f"the dataset is empty (shape {rows.shape})")
    if y_arr.ndim == 0 or y_arr.shape[0] != rows.shape[0]:
        n_y = y_arr.shape[0] if y_arr.ndim else 0
        raise DataError(f"X has {rows.shape[0]} rows, y has {n_y}")
    if y_arr.ndim > 2:
        raise DataError(f"y must be 1- or 2-dimensional, got shape {y_arr.shape}")
    names = feature_names or [f"x{j}" for j in range(rows.shape[1])]
    types = feature_types or infer_feature_types(rows)
    if len(names) != rows.shape[1] or len(types) != rows.shape[1]:
        raise DataError(f"{len(names)} feature names for {rows.shape[1]} features")
    if parent is not None:
        warm_start.check_features(parent, names, types)

    inferred, n_unique = infer_task(y_arr)
    numeric_labels = y_arr.dtype.kind in "biuf"
    resolved = resolve_spec(spec, task=inferred, n_classes=n_unique, numeric_labels=numeric_labels)
    task: Task = resolved.task or inferred
    if parent is not None:
        warm_start.check_spec(parent, resolved)
    dtype = np.dtype(resolved.dtype)

    encoder: LabelEncoder | None = None
    scaler: TargetScaler | None = None
    labels: Array | None = None
    if task == "classification":
        if y_arr.ndim == 2:
            raise DataError(f"classification needs one label per row, y has shape {y_arr.shape}")
        encoder = LabelEncoder.fit(y_arr)
        if parent is not None:
            warm_start.check_classes(parent, task, encoder.classes)
            encoder = parent.label_encoder or encoder
        labels = encoder.encode(y_arr)
        targets_all = _class_targets(labels, len(encoder.classes), resolved.loss, dtype)
    else:
        y_float = y_arr.astype(np.float64).reshape(rows.shape[0], -1)
        bad = ~np.isfinite(y_float)
        if bad.any():
            i = int(np.nonzero(bad)[0][0])
            raise DataError(f"row {i}: label {y_float[i].tolist()} is not a finite number", row=i)
        targets_all = y_float

    train_idx, val_idx = split_indices(
        len(rows),
        labels,
        resolved.validation_split,
        split_rng,
        classes=encoder.classes if encoder else None,
    )
    pre = (
        parent.preprocessor
        if parent is not None
        else Preprocessor.fit(
            rows[train_idx],
            feature_names=names,
            feature_types=types,
            standardize=resolved.preprocessing.standardize,
            impute=resolved.preprocessing.impute,
        )
    )
    y_val: Array | None = None
    w_train: Array | None = None
    if task == "regression":
        scaler = (
            parent.target_scaler
            if parent is not None and parent.target_scaler is not None
            else TargetScaler.fit(targets_all[train_idx], resolved.preprocessing.standardize_target)
        )
        if scaler.mean.shape[0] != targets_all.shape[1]:
            raise DataError(
                f"the label has {targets_all.shape[1]} columns, the init_model predicts "
                f"{scaler.mean.shape[0]}"
            )
        y_val = targets_all[val_idx]
        targets_all = scaler.transform(targets_all).astype(dtype)
    else:
        assert resolved.loss is not None and labels is not None and encoder is not None
        targets_all = smooth_targets(targets_all, resolved.label_smoothing, resolved.loss)
        if resolved.class_weight is not None:
            counts = np.bincount(labels[train_idx], minlength=len(encoder.classes)).tolist()
            per_class = np.asarray(
                class_weights(resolved.class_weight, encoder.classes, counts), dtype=dtype
            )
            w_train = per_class[labels[train_idx]].reshape(-1, 1)
    data = PreparedData(
        task=task,
        x_train=pre.transform(rows[train_idx], dtype=dtype, augment=True, error=DataError),
        t_train=np.ascontiguousarray(targets_all[train_idx]),
        labels_train=None if labels is None else labels[train_idx],
        x_val=pre.transform(rows[val_idx], dtype=dtype, error=DataError),
        t_val=np.ascontiguousarray(targets_all[val_idx]),
        labels_val=None if labels is None else labels[val_idx],
        y_val=y_val,
        preprocessor=pre,
        label_encoder=encoder,
        target_scaler=scaler,
        w_train=w_train,
    )
    return data, resolved


def _class_targets(labels: Array, n_classes: int, loss: str | None, dtype: np.dtype[Any]) -> Array:
    if loss == "binary_crossentropy":
        return labels.astype(dtype).reshape(-1, 1)
    onehot = np.zeros((len(labels), n_classes), dtype=dtype)
    onehot[np.arange(len(labels)), labels] = 1.0
    return onehot


def n_outputs(data: PreparedData) -> int:
    return int(data.t_train.shape[1])
